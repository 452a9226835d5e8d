"""Running many simulations: in this process, on a local process pool, or on Dask.

Owns: the unit of work (`Task`: a scenario, a seed and a mode), what a worker sends
back (`TaskResult`: figures only, never tables), and the three executors. Results
come back in task order whatever the executor, the number of workers or the order
of completion, and depend only on each task's scenario and seed, so a replication
gives the same figures wherever it ran. The local pool uses the `spawn` start method:
workers import clearing_sim afresh and inherit no state (no forked locks or
threads, e.g. of a progress bar), the same as on a Dask worker. Must never write
files or print (the progress bar goes to stderr, and only on a terminal).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import attrs

from clearing_sim import metrics
from clearing_sim.errors import InputError
from clearing_sim.scenario import Scenario, with_seed

CONNECT_TIMEOUT_S = 20  # how long to try to reach a Dask scheduler before giving up


@attrs.frozen
class Task:
    """One simulation to run: the scenario with `seed` as its root seed, in `mode`."""

    scenario: Scenario
    seed: int
    mode: str = "detailed"


@attrs.frozen
class TaskResult:
    """What a worker sends back: the key metrics and every number of the summary."""

    key: dict[str, float | int | None]
    numbers: dict[str, float | int]


def run_task(task: Task) -> TaskResult:
    """Simulate one task and reduce it to figures (module level, so workers can import it)."""
    from clearing_sim import api

    result = api.run(with_seed(task.scenario, task.seed), mode=task.mode)
    key = metrics.key_values(result.summary, lambda: metrics.transaction_columns(result.transactions))
    return TaskResult(key=key, numbers=metrics.flatten_numbers(result.summary))


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while the pool starts its workers, which keep it so: Ctrl-C reaches every
    process of the terminal's group, and each worker printed its own KeyboardInterrupt traceback;
    this process stops them instead (`execute`)."""
    import signal

    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_with_parent(parent_pid: int) -> None:
    """A pool worker's initializer: end the worker once its parent is gone. A parent killed
    (SIGKILL, the out-of-memory killer) cannot stop its workers, and they waited for tasks for
    ever, a replication's memory each."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def default_workers() -> int:
    """The number of CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def show_progress() -> bool:
    """A progress bar only on a terminal, and never in CI."""
    import sys

    return sys.stderr.isatty() and not os.environ.get("CI")


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=False)
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def execute(tasks: Sequence[Task], workers: int = 1, scheduler: str | None = None,
            progress: bool = False, label: str = "simulations",
            run: Callable[[Task], TaskResult] = run_task) -> list[TaskResult]:
    """Run every task and return their results in task order.

    `workers` 1 runs them in this process; more uses a local `spawn` process pool of
    that size; `scheduler` (a Dask scheduler address such as `tcp://host:8786`, or
    `local` for a local Dask cluster of `workers` processes) sends them to Dask.
    Raises InputError if `workers` < 1, Dask is not installed or the scheduler cannot
    be reached; a task's own exception propagates.
    """
    if workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    tasks = list(tasks)
    out: list[TaskResult | None] = [None] * len(tasks)
    with _Progress(len(tasks), label, progress) as bar:
        if scheduler is not None:
            _execute_dask(tasks, out, workers, scheduler, bar, run)
        elif workers == 1 or len(tasks) <= 1:
            for i, t in enumerate(tasks):
                out[i] = run(t)
                bar.advance()
        else:
            ctx = multiprocessing.get_context("spawn")
            others = set(multiprocessing.active_children())
            with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                                     initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
                futures = {}
                try:
                    with _sigint_ignored():  # in the workers, which inherit it (see there)
                        for i, t in enumerate(tasks):
                            futures[pool.submit(run, t)] = i
                    for f in as_completed(futures):
                        out[futures[f]] = f.result()
                        bar.advance()
                except BaseException:
                    # Ctrl-C, SIGTERM or a failed task: no further task starts, and the running ones
                    # stop now (leaving the pool waited for every one to finish: a whole sweep).
                    pool.shutdown(wait=False, cancel_futures=True)
                    for worker in set(multiprocessing.active_children()) - others:
                        worker.terminate()
                    raise
    assert all(r is not None for r in out), "a task returned no result"
    return out  # type: ignore[return-value]


def _execute_dask(tasks: list[Task], out: list, workers: int, scheduler: str, bar: _Progress,
                  run: Callable[[Task], TaskResult]) -> None:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError:
        raise InputError("--scheduler needs Dask distributed: pip install 'clearing-sim[dask]'") from None
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=max(1, min(workers, len(tasks))), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
            # TypeError: a scheme this machine has no set-up for (tls:// without Dask's TLS
            # configuration, ucx:// without UCX) fails inside distributed with one.
            except (OSError, TimeoutError, ValueError, TypeError) as exc:
                raise InputError(f"--scheduler: cannot reach the Dask scheduler at {scheduler!r} ({exc})") from None
        with client:
            futures = client.map(run, tasks, pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            for f in dask_completed(futures):
                out[index[f.key]] = f.result()
                bar.advance()
    finally:
        if cluster is not None:
            cluster.close()
