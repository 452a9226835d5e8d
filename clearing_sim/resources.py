"""Will a run fit in this machine's memory? A check before anything is simulated or written.

Owns: the estimate of a run's peak memory (and, for a streamed run, of its disk) and
the refusal of runs that cannot fit. A run that does not stream (`clearing_sim.streamed`)
keeps every transaction of the run in memory as columns (about
`BYTES_PER_TRANSACTION` at peak, measured on the baseline scenario in fast mode at
0.24 and 2.4 million purchases), so a national-scale day needs far more memory than a
laptop has; the check turns what would be an out-of-memory kill half-way through a run
into a clear error naming the key, before anything is written. Must never simulate.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clearing_sim.errors import InputError
from clearing_sim.scenario import Scenario

BYTES_PER_TRANSACTION = 800  # peak resident bytes per purchase (measured: ~700-800)
BASE_BYTES = 400 * 2**20  # the interpreter, numpy, pyarrow, SimPy, numba
USABLE_FRACTION = 0.8
ENV_SKIP = "CLEARING_SIM_SKIP_MEMORY_CHECK"
# A streamed fast-mode run (clearing_sim.streamed) keeps per-card state (open-to-buy), two
# drawn blocks, a few parts of purchases in flight and a row group; after the forward pass,
# one group's floats at a time are read back for exact percentiles. national_day.yaml
# (40 million cards, 10^8 purchases) peaked at 2.46 GiB (3.02 GiB before the forward pass
# went on in parts); this estimate gives 3.2 GiB for it, a margin kept on purpose.
STREAM_BASE_BYTES = 1024 * 2**20
STREAM_BYTES_PER_CARD = 40
STREAM_BYTES_PER_TRANSACTION = 8
STREAM_DISK_BYTES_PER_TRANSACTION = 400


def available_bytes() -> int | None:
    """Memory available to a new run (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def estimated_peak_bytes(scenario: Scenario, streamed: bool = False) -> int:
    """Estimated peak resident memory of a run of `scenario`, bytes (`streamed`: a streamed
    fast-mode run, `clearing_sim.streamed`, whose memory grows with the cards, not the day)."""
    if streamed:
        cards = sum(i.cards for i in scenario.issuers)
        transactions = scenario.traffic.transactions_per_day * scenario.run.days
        return STREAM_BASE_BYTES + cards * STREAM_BYTES_PER_CARD + transactions * STREAM_BYTES_PER_TRANSACTION
    transactions = scenario.traffic.transactions_per_day * scenario.run.days
    return BASE_BYTES + transactions * BYTES_PER_TRANSACTION


def estimated_disk_bytes(scenario: Scenario) -> int:
    """Disk a streamed run needs beside its run folder: scratch files and the tables."""
    return scenario.traffic.transactions_per_day * scenario.run.days * STREAM_DISK_BYTES_PER_TRANSACTION


def check_memory(scenario: Scenario, streamed: bool = False, out: str | os.PathLike | None = None,
                 not_streamed_because: str | None = None) -> None:
    """Raise InputError (exit 2) naming the volume key if the run cannot fit in memory
    (or, `streamed`, its scratch files and tables on the disk that will hold the run folder
    `out`, which they are written beside; the current folder's when `out` is None).

    `not_streamed_because`: why a `--mode fast` run keeps the day in memory; without it, a
    run refused for memory is told why it could not stream (`why_not_streamable`), or to
    use `--mode fast` when it could."""
    if os.environ.get(ENV_SKIP):
        return
    gib = 2**30
    if streamed:
        from clearing_sim.outputs import nearest_existing

        # Scratch files and tables go beside the run folder: the disk of its parent (nearest existing).
        where = nearest_existing(Path(out).absolute().parent) if out is not None else Path(".")
        free = shutil.disk_usage(where).free
        disk = estimated_disk_bytes(scenario)
        if disk > free:
            raise InputError(
                f"run refused before it started: traffic.transactions_per_day: a streamed run of "
                f"{scenario.traffic.transactions_per_day:,} purchases a day for {scenario.run.days} day(s) needs about "
                f"{disk / gib:.1f} GiB of disk for its scratch files and tables; {free / gib:.1f} GiB are free at {where}")
    available = available_bytes()
    need = estimated_peak_bytes(scenario, streamed)
    if available is None or need <= USABLE_FRACTION * available:
        return
    if streamed:
        raise InputError(
            f"run refused before it started: issuers[].cards: a streamed run of {sum(i.cards for i in scenario.issuers):,} "
            f"cards needs about {need / gib:.1f} GiB of memory (open-to-buy per card, and 8 bytes per purchase); "
            f"this machine has "
            f"{available / gib:.1f} GiB available. Lower the cards, or set {ENV_SKIP}=1 to try anyway")
    if not_streamed_because is None:  # from the API, or a detailed run: could it stream in fast mode?
        from clearing_sim.model.network import horizon_days
        from clearing_sim.model.stream_clearing import why_not_streamable

        not_streamed_because = why_not_streamable(scenario, horizon_days(scenario))
    if not_streamed_because is not None:
        advice = (f"This run cannot stream, even in fast mode ({not_streamed_because}; docs/streaming.md). Lower "
                  f"the volume, or set {ENV_SKIP}=1 to try anyway")
    else:
        advice = (f"Lower the volume, run it with --mode fast from the command line (a large day streams when its "
                  f"scenario allows: docs/streaming.md), or set {ENV_SKIP}=1 to try anyway")
    raise InputError(
        f"run refused before it started: traffic.transactions_per_day: "
        f"{scenario.traffic.transactions_per_day:,} purchases a day for {scenario.run.days} day(s) need about "
        f"{need / gib:.1f} GiB of memory (a run that does not stream keeps every transaction in memory); "
        f"this machine has {available / gib:.1f} GiB available. {advice}"
    )
