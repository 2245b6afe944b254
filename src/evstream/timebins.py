"""The time-bin rules of evstream, in one place (times are int64 µs).

* **Events**: a window ``[t0, t1)`` holds the events with ``t0 <= t < t1``; consecutive windows
  share no event and lose none.
* **Labels**: the same window owns the labels with ``t0 < t <= t1``: a box describes the scene
  at the end of the events that show it, so a box exactly on an edge belongs to the window that
  ends there. A chunk of ``T`` bins of ``duration / T`` µs splits its labels by the same rule,
  bin ``b`` owning ``(t0 + b·d, t0 + (b+1)·d]``.
* **n_events windows**: a chunk of a count-based stream covers ``(previous end, end]`` where
  ``end`` is its last event time rounded up so that the duration is a positive multiple of ``T``
  (a label loader that splits ``duration // T`` per bin then loses nothing).

The event window is what the readers of :mod:`evstream.io` cut (``load_delta_t``,
``EventsIterator``); the functions here give the label side: the box helpers of
:mod:`evstream.data.box_processing`, the precompute's label splitting and the chunk sources'
n_events windows use them, and none restates the rule.
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_bins", "label_slice", "n_events_window"]


def label_bins(t, t0: int, duration: int, num_bins: int = 1) -> np.ndarray:
    """Index ``b`` of the label bin ``(t0 + b·d, t0 + (b+1)·d]`` of each time ``t``, with
    ``d = duration / num_bins`` taken exactly (integer arithmetic: no rounding of ``d``).

    ``b < 0`` for ``t <= t0``, ``b >= num_bins`` for ``t > t0 + duration``. ``num_bins=1``
    numbers whole windows of ``duration`` µs from ``t0`` (window ``b`` is ``(t0 + b·duration,
    t0 + (b+1)·duration]``)."""
    t = np.asarray(t, dtype=np.int64)
    return -(((np.int64(t0) - t) * np.int64(num_bins)) // np.int64(duration)) - 1


def label_slice(t: np.ndarray, t0: int, t1: int) -> slice:
    """The labels of the window ``(t0, t1]`` in a time-sorted array ``t``, as a slice."""
    return slice(int(np.searchsorted(t, t0, side="right")), int(np.searchsorted(t, t1, side="right")))


def n_events_window(previous_end: int, last_t: int, num_bins: int) -> tuple[int, int]:
    """``(start, duration)`` of an n_events chunk whose last event is at ``last_t``: it starts
    where the previous chunk ended and lasts the smallest positive multiple of ``num_bins`` µs
    that reaches ``last_t``."""
    span = int(last_t) - int(previous_end)
    return int(previous_end), num_bins * max(1, -(-span // num_bins))
