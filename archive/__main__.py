"""`python -m archive …`: the command line (the commands are in archive/cli/)."""

import sys

from archive.cli import main

sys.exit(main())
