"""`python -m clearing_sim ...`: the `clearing-sim` command (same arguments, same exit codes)."""

import sys

from clearing_sim.cli import main

sys.exit(main())
