"""Which events make each RVT window, read in bounded memory.

With ``r`` the repaired (non-decreasing) times and ``T_k`` the window ends:

* ``end_k`` = number of events with ``r <= T_k``;
* DURATION (``"duration"``): ``start_k`` = first event with ``r >= T_k - 50 000``: the window is
  the **closed** interval ``[T_k - 50 ms, T_k]``, so an event exactly at ``T_k - 50 ms = T_{k-1}``
  lies in two windows (RVT quirk, reproduced);
* COUNT (``"count"``): ``start_k = max(end_k - 50 000, 0)``.

:func:`iter_window_events` reads the windows in *runs*: up to :data:`RUN_WINDOWS` consecutive
windows whose starts lie at most :data:`MAX_GAP_US` after the previous window's end are read
as one span of events (one read), and each window is a view of it, so the events two windows
share are read once and not copied. After a run, the few events the next window in order can
share with it (those on the shared edge; COUNT: the last 50 000) are kept (a copy), so that the
next run, in a stream of samples, continues without seeking back: only its first window is
then copied together. The gen4 windows (50 ms apart) touch; the gen1 windows (125 ms apart)
leave 75 ms between them, which are read through rather than sought over. Memory is the events
of one run plus that kept tail, never the file.
"""

from __future__ import annotations

from collections.abc import Iterator

import numba
import numpy as np

from evstream.errors import ArgumentError
from evstream.io import EventCD
from evstream.io.reader import assign_records
from evstream.rvt.config import COUNT_EVENTS, MODES, WINDOW_STEP_US
from evstream.rvt.events import RepairedEvents, first_at_or_after_time

#: Most windows read as one span of events.
RUN_WINDOWS = 8
#: Largest time (µs) between a window's end and the next window's start read through in a run
#: (a longer gap ends the run: the next run seeks).
MAX_GAP_US = 100_000


@numba.njit(cache=True, nogil=True)
def _search(head_t, body_t, value, right):
    """``np.searchsorted`` of ``value`` in the concatenation of two sorted arrays."""
    side_h = np.searchsorted(head_t, value, side="right") if right else \
        np.searchsorted(head_t, value, side="left")
    if side_h < len(head_t):
        return side_h
    side_b = np.searchsorted(body_t, value, side="right") if right else \
        np.searchsorted(body_t, value, side="left")
    return len(head_t) + side_b


@numba.njit(cache=True, nogil=True)
def _window_bounds(head_t, body_t, ends, step, count, base):
    """``(start, end)`` of each window as indices into the span ``head + body`` (sorted times),
    which starts at the file's event ``base``: ``end`` = events with ``t <= T``; ``start`` = the
    first ``t >= T - step`` (DURATION), or with ``count > 0`` (COUNT) the file's event
    ``max(base + end - count, 0)``, which lies in the span (binary searches, no copy)."""
    bounds = np.empty((len(ends), 2), np.int64)
    for k in range(len(ends)):
        end = _search(head_t, body_t, ends[k], True)
        bounds[k, 1] = end
        if count > 0:
            bounds[k, 0] = max(end + base - count, base) - base
        else:
            bounds[k, 0] = _search(head_t, body_t, ends[k] - step, False)
    return bounds


def _runs(ends: np.ndarray, first: int, last: int) -> Iterator[tuple[int, int]]:
    """``[k, j)`` index ranges of the windows read together (module docstring)."""
    k = first
    while k < last:
        j = k + 1
        while j < last and j - k < RUN_WINDOWS and \
                int(ends[j]) - WINDOW_STEP_US <= int(ends[j - 1]) + MAX_GAP_US:
            j += 1
        yield k, j
        k = j


def _span(events: RepairedEvents, ends: np.ndarray,
          mode: str) -> tuple[int, np.ndarray, np.ndarray]:
    """``(base, head, body)``: the events of windows ``ends`` (one run) are the span
    ``head + body`` starting at the file's event ``base``; ``head`` comes from what the
    previous run kept (no seek back for the events a window shares with the previous one),
    ``body`` is read."""
    first_end, last_end = int(ends[0]), int(ends[-1])
    if mode == "duration":
        start_time = first_end - WINDOW_STEP_US
        kept = events.kept_from_time(start_time)
        if kept is None or start_time - events.cursor_time > MAX_GAP_US:
            base, head = events.seek_time(start_time), np.empty(0, EventCD)
        else:
            base, head = kept
        return base, head, events.load_until(last_end)
    kept = events.kept()
    if kept is not None and events.cursor_time <= first_end + 1:   # no event > T_k read yet
        kept_start, head = kept
        before = events.cursor
        body = events.load_until(last_end)
        base = max(before + first_at_or_after_time(body, first_end + 1) - COUNT_EVENTS, 0)
        if base >= before:
            return base, head[:0], body[base - before:]
        if base >= kept_start:
            return base, head[base - kept_start:], body
    end = events.first_at_or_after(first_end, right=True)
    base = max(end - COUNT_EVENTS, 0)
    events.seek_event(base)
    return base, np.empty(0, EventCD), events.load_until(last_end)


def _keep_tail(events: RepairedEvents, head: np.ndarray, body: np.ndarray, ends: np.ndarray,
               j: int, mode: str) -> None:
    """After a run ending at window ``j - 1``: keep the events the next window in order can
    share with it (DURATION: those at or after its start; COUNT: the last COUNT_EVENTS)."""
    if mode == "duration":
        from_time = int(ends[j]) - WINDOW_STEP_US if j < len(ends) else int(ends[j - 1]) + 1
        k = _search(head["t"], body["t"], from_time, False)
    else:
        from_time, k = None, max(len(head) + len(body) - COUNT_EVENTS, 0)
    h = len(head)
    events.keep(body[k - h:] if k >= h else _joined(head[k:], body), from_time)


def _joined(head: np.ndarray, body: np.ndarray) -> np.ndarray:
    """``head`` then ``body`` in one new EventCD array (byte copies)."""
    out = np.empty(len(head) + len(body), EventCD)
    assign_records(out[:len(head)], head)
    assign_records(out[len(head):], body)
    return out


def iter_window_events(events: RepairedEvents, ends: np.ndarray, mode: str = "duration",
                       first: int = 0, last: int | None = None) -> Iterator[np.ndarray]:
    """The events (EventCD, repaired ``t``) of windows ``first .. last - 1`` in order; each
    array is valid until the next is asked for."""
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    last = len(ends) if last is None else int(last)
    ends = np.asarray(ends, np.int64)
    for k, j in _runs(ends, first, last):
        base, head, body = _span(events, ends[k:j], mode)
        bounds = _window_bounds(head["t"], body["t"], ends[k:j], WINDOW_STEP_US,
                                COUNT_EVENTS if mode == "count" else 0, base)
        h = len(head)
        for s, e in bounds:
            if e <= h:
                yield head[s:e]
            elif s >= h:
                yield body[s - h:e - h]
            else:               # the window begins with events kept from the previous run
                yield _joined(head[s:], body[:e - h])
        _keep_tail(events, head, body, ends, j, mode)
