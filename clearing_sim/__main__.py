"""`python -m clearing_sim ...`: the `clearing-sim` command (same arguments, same exit codes)."""

import sys

from clearing_sim._entry import main

sys.exit(main())
