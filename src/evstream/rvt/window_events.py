"""Which events make each RVT window, read in bounded memory.

With ``r`` the repaired (non-decreasing) times and ``T_k`` the window ends:

* ``end_k`` = number of events with ``r <= T_k``;
* DURATION (``"duration"``): ``start_k`` = first event with ``r >= T_k - 50 000``: the window is
  the **closed** interval ``[T_k - 50 ms, T_k]``, so an event exactly at ``T_k - 50 ms = T_{k-1}``
  lies in two windows (RVT quirk, reproduced);
* COUNT (``"count"``): ``start_k = max(end_k - 50 000, 0)``.

:func:`iter_window_events` walks windows ``first .. last - 1`` keeping only the events from the
current window's start onwards, so memory is one window plus one read block, never the file.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from evstream.errors import ArgumentError
from evstream.rvt.config import COUNT_EVENTS, MODES, WINDOW_STEP_US
from evstream.rvt.events import INDEX_BLOCK, RepairedEvents

#: Events read at a time while walking windows.
READ_BLOCK = 16 * INDEX_BLOCK


def _window_start(events: RepairedEvents, end_time: int, mode: str) -> int:
    if mode == "duration":
        return events.first_at_or_after(end_time - WINDOW_STEP_US)
    return max(events.first_at_or_after(end_time, right=True) - COUNT_EVENTS, 0)


def iter_window_events(events: RepairedEvents, ends: np.ndarray, mode: str = "duration",
                       first: int = 0, last: int | None = None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(x, y, p, r)`` of windows ``first .. last - 1`` in order (views valid until the next).

    Starting at ``first > 0`` uses the recording's running-maximum index (one pass over the
    times, once per :class:`RepairedEvents`)."""
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    last = len(ends) if last is None else int(last)
    if last <= first:
        return
    start = 0 if first == 0 else _window_start(events, int(ends[first]), mode)
    bx, by, bp, br = events.read(start, min(start + READ_BLOCK, events.count))
    buf0 = start                       # absolute index of buffer row 0
    next_read = buf0 + br.size
    for k in range(first, last):
        end_time = int(ends[k])
        while next_read < events.count and (br.size == 0 or br[-1] <= end_time):
            carry = int(br[-1]) if br.size else None
            nx, ny, np_, nr = events.read(next_read, min(next_read + READ_BLOCK, events.count),
                                          carry)
            bx, by, bp, br = (np.concatenate(a) for a in ((bx, nx), (by, ny), (bp, np_), (br, nr)))
            next_read += nr.size
        e = int(np.searchsorted(br, end_time, side="right"))
        if mode == "duration":
            s = int(np.searchsorted(br, end_time - WINDOW_STEP_US, side="left"))
        else:
            s = max(e + buf0 - COUNT_EVENTS, buf0) - buf0
        yield bx[s:e], by[s:e], bp[s:e], br[s:e]
        if s:                          # later windows never start before this one
            bx, by, bp, br = bx[s:], by[s:], bp[s:], br[s:]
            buf0 += s
