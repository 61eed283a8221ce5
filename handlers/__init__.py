"""Lambda entry points: each module decodes its event and calls the core in `archive`."""
