"""The `clearing-sim` command's entry point: `cli.main`, with Ctrl-C and SIGTERM answered
while the command's modules still load (numpy, numba, pyarrow: the better part of a
second), where Python would print a KeyboardInterrupt traceback or die of the signal."""

import signal
import sys


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    try:
        signal.signal(signal.SIGTERM, _terminate)  # cli.main installs its own once loaded
        from clearing_sim.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was started\n")
        return 130
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
