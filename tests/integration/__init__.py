"""The core against a real PostgreSQL and moto (in-process)."""
