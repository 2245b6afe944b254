"""Compute the items of an iterator in a background thread, a few items ahead of their consumer.

Used where a producer that releases the GIL (numba ``nogil`` kernels, file reads) feeds a
consumer that also waits outside Python (an HDF5 write with its compression filter): the two
then overlap on two cores instead of taking turns.

The items are handed over as they are, not copied: an iterator that writes into reused buffers
must use a ring of at least ``depth + 2`` of them (``depth`` items queued, one being produced,
one held by the consumer).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()
#: Seconds between checks of the consumer's stop request while the queue is full.
_POLL_S = 0.1


def run_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items`` in order, computed by a background thread at most ``depth``
    items ahead. An exception of the producer is raised in the consumer at that item; a
    consumer that stops early (an error, ``close()``) stops the producer, and the thread is
    joined before this generator returns, so ``items``' resources may be released after it."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                handoff.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:      # handed to the consumer, raised there
            put((_END, exc))

    thread = threading.Thread(target=produce, name="evstream-run-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()
