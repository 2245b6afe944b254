"""Event times that go backwards in file order: the policies, the running-maximum repair and
its index, shared by the readers that offer ``time_order`` (DAT, HDF5 event arrays).

A *late* event is one whose stored time is below the running maximum ``m`` of the times
stored before it (in file order). The policies (:data:`TIME_ORDER_POLICIES`):

* ``"repair"``: report ``max(t, m)``: the time is raised to the running maximum, the event keeps
  its position: ``r_k = max(t_k, r_{k-1})`` (RVT's rule for its event files). Times are then
  non-decreasing, and seeks are exact on them;
* ``"keep"``: report the stored times;
* ``"raise"``: raise :class:`~evstream.errors.FileFormatError` at the first late event.

Under ``"repair"`` and ``"keep"`` late events are counted in the reader's
``time_repaired_count`` and the first ones found give one warning per reader
(:func:`report_late_events`). The count follows ``out_of_bounds_count``'s convention: only
events past the furthest point decoded so far are counted, so an event decoded again after a
seek back is not counted twice, and one that a forward seek skipped is not counted if it is
decoded later.

:func:`order_time` is the per-event rule, called from the readers' numba decode loops (so the
repair costs no extra pass).
:class:`RunningMaxIndex` knows the running maximum at the end of each block of
:data:`TIME_BLOCK` events (built lazily, one pass over the times up to where it is asked),
which a reader needs to resume the running maximum after a seek and to seek by repaired time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numba
import numpy as np

from ..errors import ArgumentError, FileFormatError

#: What a reader does with a time earlier than an earlier event's (module docstring).
TIME_ORDER_POLICIES = ("repair", "keep", "raise")

#: Events per block of :class:`RunningMaxIndex`.
TIME_BLOCK = 1 << 16

#: Running maximum before the first event (every time is at or above it).
NO_TIME = np.iinfo(np.int64).min


def check_time_order(time_order: str, path: str) -> str:
    """``time_order`` if it is one of :data:`TIME_ORDER_POLICIES`, else :class:`ArgumentError`."""
    if time_order not in TIME_ORDER_POLICIES:
        raise ArgumentError(f"time_order must be one of {TIME_ORDER_POLICIES}, not "
                            f"{time_order!r}", path)
    return time_order


@numba.njit(cache=True, nogil=True, inline="always")
def order_time(t, running, repair):
    """One event of the rule: ``(reported time, running maximum after it, late)`` for stored
    time ``t`` (int64) after running maximum ``running``; ``repair`` raises a late time."""
    if t < running:
        return (running if repair else t), running, True
    return t, t, False


def report_late_events(reader, late: int, first_late: int, first_late_time: int,
                       unit: str = "event", hint: str = "") -> None:
    """Apply ``reader.time_order`` to one decoded block: raise at its first late event
    (``first_late`` >= 0, absolute index, stored time ``first_late_time``) under ``"raise"``;
    else add ``late`` (the block's late events not counted before) to
    ``reader.time_repaired_count``, warning once per reader. ``unit`` names an event in the
    messages (``"record"`` for DAT); ``hint`` is appended to the error."""
    if first_late >= 0 and reader.time_order == "raise":
        raise FileFormatError(f"time goes backwards at {unit} {first_late} (t = "
                              f"{first_late_time} µs, earlier than an earlier {unit}'s; "
                              f"time_order='raise', 'repair' applies a running maximum){hint}",
                              reader.path)
    if late <= 0:
        return
    if reader.time_repaired_count == 0:
        what = "raised to the running maximum" if reader.time_order == "repair" else \
            "kept as stored"
        warnings.warn(f"{reader.path}: times not sorted: {late} event(s) earlier than an "
                      f"earlier event, {what} (time_order={reader.time_order!r}; the running "
                      f"total is in reader.time_repaired_count)", stacklevel=5)
    reader.time_repaired_count += late


class RunningMaxIndex:
    """Running maximum of a file's stored times at the end of each block of ``block`` events.

    Args:
        count: events in the file.
        read_times: ``read_times(lo, hi)`` -> the stored times of events ``[lo, hi)`` (any
            integer array, in µs as the reader reports them).
        block: events per block (default :data:`TIME_BLOCK`).

    Blocks are read in order, once, only as far as a query needs.
    """

    def __init__(self, count: int, read_times: Callable[[int, int], np.ndarray],
                 block: int | None = None):
        self.count = int(count)
        self.block = int(block or TIME_BLOCK)
        self._read_times = read_times
        self._prefix = np.empty(-(-self.count // self.block), dtype=np.int64)
        self._known = 0          # blocks whose running maximum is in self._prefix

    def _times(self, b: int) -> np.ndarray:
        lo = b * self.block
        return np.asarray(self._read_times(lo, min(lo + self.block, self.count)), np.int64)

    def _extend(self, blocks: int) -> None:
        """Know the running maximum of the first ``blocks`` blocks."""
        running = int(self._prefix[self._known - 1]) if self._known else NO_TIME
        for b in range(self._known, min(blocks, len(self._prefix))):
            running = max(running, int(self._times(b).max()))
            self._prefix[b] = running
            self._known = b + 1

    def max_before(self, row: int) -> int:
        """Largest stored time of events ``[0, row)`` (:data:`NO_TIME` for row 0)."""
        row = min(max(int(row), 0), self.count)
        block, within = divmod(row, self.block)
        self._extend(block)
        best = int(self._prefix[block - 1]) if block else NO_TIME
        if within:
            best = max(best, int(self._times(block)[:within].max()))
        return best

    def repaired(self, b: int) -> np.ndarray:
        """The repaired times of block ``b`` (int64)."""
        carry = self.max_before(b * self.block)
        r = np.maximum.accumulate(self._times(b))
        return np.maximum(r, carry, out=r)

    def first_at_or_after(self, t: int) -> int:
        """Index of the first event whose repaired time is ``>= t`` (``count`` if none)."""
        t = int(t)
        while self._known < len(self._prefix) and \
                (self._known == 0 or self._prefix[self._known - 1] < t):
            self._extend(self._known + 1)
        b = int(np.searchsorted(self._prefix[:self._known], t, side="left"))
        if b >= self._known:
            return self.count
        return b * self.block + int(np.searchsorted(self.repaired(b), t, side="left"))
