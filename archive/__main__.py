"""`python -m archive …`: the command line (see archive/cli.py)."""

import sys

from archive.cli import main

sys.exit(main())
