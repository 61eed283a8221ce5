"""The local stack as a user runs it: servers on loopback, the CLI, the demo."""
