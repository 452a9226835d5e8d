"""The threads that overlap a streamed run's stages: order kept, errors raised, nothing left running."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.pipeline import Background, Prefetch, Worker


def _alive(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(), max_size=50), st.integers(1, 4))
def test_prefetch_yields_every_item_in_order(items, depth):
    with Prefetch(iter(items), depth) as it:
        assert list(it) == items
    assert not _alive("prefetch")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(), max_size=50), st.integers(1, 4))
def test_worker_applies_fn_to_every_item_in_order(items, depth):
    seen = []
    with Worker(seen.append, depth) as w:
        for x in items:
            w.put(x)
    assert seen == items
    assert not _alive("worker")


def test_prefetch_raises_the_producers_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        with Prefetch(items()) as it:
            for x in it:
                got.append(x)
    assert got == [1, 2]
    assert not _alive("prefetch")


def test_prefetch_stays_at_most_depth_ahead():
    produced = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    with Prefetch(items(), depth=2) as it:
        assert next(it) == 0
        time.sleep(0.3)  # give the producer every chance to run ahead
        # 0 is taken; 1 and 2 are the two items in flight: never more.
        assert produced == [0, 1, 2]
    assert not _alive("prefetch")


def test_worker_holds_at_most_depth_items():
    release = threading.Event()
    started = []

    def slow(x):
        started.append(x)
        release.wait()

    with Worker(slow, depth=1) as w:
        w.put(0)
        blocked = threading.Thread(target=w.put, args=(1,))
        blocked.start()
        time.sleep(0.3)
        assert blocked.is_alive() and started == [0]  # 1 waits until 0 is done
        release.set()
        blocked.join()
    assert started == [0, 1]


def test_leaving_a_prefetch_early_stops_its_producer():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    with pytest.raises(RuntimeError, match="consumer failed"):
        with Prefetch(endless()) as it:
            next(it)
            raise RuntimeError("consumer failed")
    assert not _alive("prefetch")
    n = len(produced)
    time.sleep(0.2)
    assert len(produced) == n


def test_worker_error_reaches_the_owner_and_later_items_are_dropped():
    seen = []

    def fn(x):
        if x == 3:
            raise ValueError("bad record")
        seen.append(x)

    with pytest.raises(ValueError, match="bad record"):
        with Worker(fn) as w:
            for x in range(10):
                w.put(x)
    assert seen == [0, 1, 2]
    assert not _alive("worker")


def test_owner_error_wins_over_the_workers_and_the_worker_is_joined():
    def fn(x):
        raise ValueError("worker failed")

    with pytest.raises(KeyError):
        with Worker(fn) as w:
            w.put(1)
            time.sleep(0.1)
            raise KeyError("owner failed")
    assert not _alive("worker")


def test_background_join_reraises():
    def fail():
        raise ValueError("in the thread")

    t = Background(fail)
    with pytest.raises(ValueError, match="in the thread"):
        t.join()
    done = []
    Background(done.append, 7).join()
    assert done == [7]


def test_leaving_a_prefetch_early_closes_its_items():
    closed = threading.Event()

    def items():
        try:
            yield from range(1000)
        finally:
            closed.set()

    with Prefetch(items(), name="closing") as it:
        assert next(it) == 0
    assert closed.is_set() and not _alive("closing")
