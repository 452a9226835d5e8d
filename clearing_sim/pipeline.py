"""Threads that overlap the stages of a streamed run, so that both cores work.

Owns: `Prefetch` (an iterable's items produced ahead, in a thread), `Worker` (a function
applied to items in order, in a thread) and `Background` (one call in a thread). Each
stage still sees its items one at a time and in order, so a pipeline computes exactly
what the same stages run one after the other compute; only the waiting overlaps. The
stages pay off where their work lets go of the GIL: numpy's large-array loops and random
draws, numba kernels compiled with `nogil=True`, Arrow's encoding and file writes.

Must never: reorder items, lose an exception (a stage's error is raised in its owner's
thread), hold more than `depth` items in flight, or leave a thread running after its
owner's `with` block ends, failure included.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.05  # how often a blocked producer looks whether its consumer has gone


class Prefetch(Generic[T]):
    """`with Prefetch(items, depth) as it: for x in it: ...`: `items` is iterated in a
    thread, at most `depth` items ahead of the loop, the one being produced included:
    with depth 1 the next item is made while the loop works on the current one, and no
    further (an item can be large: a block of purchases).

    An error raised while producing is raised by the loop, after the items before it.
    Leaving the `with` block early stops the producer at its next item, closes `items`
    (a generator's `finally` runs) and joins the thread.
    """

    def __init__(self, items: Iterable[T], depth: int = 1, name: str = "prefetch") -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(depth)  # items made or being made, not yet taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _slot(self) -> bool:
        """Wait for room for one more item; False once the consumer has gone."""
        while not self._stop.is_set():
            if self._slots.acquire(timeout=_POLL_S):
                return True
        return False

    def _produce(self) -> None:
        items = iter(self._items)
        try:
            while self._slot():
                try:
                    item = next(items)
                except StopIteration:
                    self._queue.put((True, _END))
                    return
                self._queue.put((True, item))
        except BaseException as exc:  # noqa: BLE001 - raised again in the consuming thread
            self._queue.put((False, exc))
        finally:  # a generator stopped early runs its own clean-up (open files) here
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _consume(self) -> Iterator[T]:
        while True:
            ok, item = self._queue.get()
            self._slots.release()
            if not ok:
                raise item
            if item is _END:
                return
            yield item


class Worker(Generic[T]):
    """`with Worker(fn, depth) as w: w.put(x) ...`: `fn` is applied to each item, in the
    order put, in one thread; `put` blocks while `depth` items are put and not yet done
    (with depth 1, the owner goes on while the worker does one item, and no further).

    After `fn` fails, the worker drops the items still coming, and the next `put` or the
    end of the `with` block raises the failure (unless the block is already failing).
    """

    def __init__(self, fn: Callable[[T], None], depth: int = 1) -> None:
        self._fn = fn
        self._queue: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(depth)  # items put, not yet done
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="worker", daemon=True)

    def __enter__(self) -> Worker[T]:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._queue.put(_END)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            raise self._error
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            try:
                if self._error is None:  # after a failure, items are dropped
                    self._fn(item)
            except BaseException as exc:  # noqa: BLE001 - raised again in the owner's thread
                self._error = exc
            finally:
                del item  # let go of the item before the owner may put the next
                self._slots.release()


class Background(threading.Thread):
    """`fn(*args)` run in a thread; `join()` re-raises what it raised."""

    def __init__(self, fn: Callable[..., None], *args: Any) -> None:
        super().__init__(daemon=True)
        self.fn, self.args, self.error = fn, args, None
        self.start()

    def run(self) -> None:
        try:
            self.fn(*self.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error
