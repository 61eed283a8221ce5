"""Pure functions: no database, no AWS, no servers."""
