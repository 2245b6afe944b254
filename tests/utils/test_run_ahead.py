"""run_ahead: items in order, computed ahead in a thread, errors handed over, early stop joins."""

import threading
import time

import numpy as np
import pytest

from evstream.errors import EventArrayError
from evstream.utils.run_ahead import run_ahead


def _ring_items(n, ring, produced):
    """Item k is ring[k % len(ring)] filled with k (the reused-buffer pattern of the RVT writer)."""
    for k in range(n):
        ring[k % len(ring)] = k
        produced.append(threading.get_ident())
        yield ring[k % len(ring)]


def test_items_in_order_from_another_thread_with_a_ring_of_depth_plus_two():
    depth = 2
    ring = np.empty((depth + 2, 3), np.int64)
    produced = []
    seen = []
    for item in run_ahead(_ring_items(50, ring, produced), depth):
        time.sleep(0.001)                  # the producer runs ahead meanwhile
        assert (item == item[0]).all()     # not overwritten while held
        seen.append(int(item[0]))
    assert seen == list(range(50))
    assert set(produced) == {produced[0]} and produced[0] != threading.get_ident()


def test_producer_is_at_most_depth_plus_one_items_ahead():
    depth = 3
    produced = []

    def items():
        for k in range(100):
            produced.append(k)
            yield k

    it = run_ahead(items(), depth)
    assert next(it) == 0
    deadline = time.monotonic() + 10
    while len(produced) < depth + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(produced) == depth + 2      # item 0 taken, `depth` queued, one waiting to be put
    it.close()


def test_producer_error_is_raised_at_its_item():
    def items():
        yield 0
        yield 1
        raise EventArrayError("bad window", "rec.dat")

    got = []
    with pytest.raises(EventArrayError, match="rec.dat: bad window"):
        for item in run_ahead(items()):
            got.append(item)
    assert got == [0, 1]


def test_consumer_stopping_early_stops_and_joins_the_producer():
    before = threading.active_count()

    def items():
        yield from range(10_000)

    with pytest.raises(RuntimeError, match="disk full"):
        for item in run_ahead(items(), 2):
            if item == 5:
                raise RuntimeError("disk full")
    assert threading.active_count() == before
