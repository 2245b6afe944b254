"""The cursor semantics shared by every event-file reader (metavision_core compatible).

A reader walks a file's events in file order. Its state is a cursor (index of the next event
to return) and ``current_time`` (µs):

* ``load_n_events(n)``: the next ``n`` events (fewer at the end).
* ``load_delta_t(dt)``: the events from the cursor up to (excluding) the first one with
  ``t >= current_time + dt``.
* ``load_mixed(n, dt)``: whichever of the two limits is reached first.

``current_time`` after a load follows one of two rules (``docs/readers.md`` §1):

| call | DAT / NPY / HDF5 readers | :class:`~evstream.io.raw.RawReader` |
|---|---|---|
| ``load_n_events(n)`` | ``t`` of the last event returned | ``t`` of the next event (the last returned at the end of the file) |
| ``load_delta_t(dt)`` | ``current_time + dt`` | ``current_time + dt`` |
| ``load_delta_t(dt)`` reaching the end of the file | ``t`` of the last event | ``current_time + dt`` |
| ``load_mixed(n, dt)`` | the event rule if the count cut the slice, else the window rule | same, RAW rules |

A reader with no event left keeps its ``current_time`` when a load returns nothing (DAT rule).
* ``seek_event(n)`` / ``seek_time(t)``: move the cursor to event ``n`` / to the first event with
  ``t_event >= t``.

``is_done()`` is true once the cursor has reached the end of the file. Every returned array is
a fresh array owned by the caller (never a view of an internal buffer).

Concrete readers only provide a *source*: ``_decode_into(out)`` (decode the next events into a
buffer, 0 at the end; optionally ``_decode_until(out, t_end)``, which also stops at a time
window's end, so that a long window is decoded straight into its array), ``_rewind()``, and
two seek hints that position the source at or before
the requested place; the discarding of the few events between a hint and the target is done
here, once, for every format.
"""

from __future__ import annotations

import bisect
import os
import warnings
from typing import Literal

import numba
import numpy as np

from ..errors import ArgumentError, GeometryError, SeekError
from ..utils.page_warmer import PageWarmer
from ..utils.recycled import RecycledArrays
from .dtypes import EventCD

#: What a reader does with events outside the declared sensor geometry.
#: "warn": drop them and warn once per reader with the running count (``out_of_bounds_count``);
#: "raise": raise :class:`~evstream.errors.GeometryError` at the first one; "keep": no check.
OutOfBounds = Literal["warn", "raise", "keep"]
OUT_OF_BOUNDS_POLICIES = ("warn", "raise", "keep")

#: Free room (events) a decode call needs: the most events one word of any format produces.
_MIN_ROOM = 64

#: Events :meth:`EventReader.read_all` decodes per call: its progress, reported to the
#: :class:`~evstream.utils.page_warmer.PageWarmer` that faults the output's pages in ahead.
_READ_ALL_STEP = 1 << 20
#: bytes from which a count read's array is faulted in by a PageWarmer (smaller ones are mostly
#: recycled arrays, whose pages are already there)
_WARM_COUNT_BYTES = 64 << 20

#: Events the first decode after opening or a seek may produce; each further decode of the
#: buffer may produce twice as many as the one before, up to the buffer size. A seek followed
#: by a short read then decodes little more than what it returns, while sequential reading
#: reaches full-buffer decodes within a few calls. A count-limited read of at least this many
#: events is decoded to its count, straight into its array (no read-ahead to copy back and
#: out again).
_FIRST_READ_AHEAD = 1 << 13

#: Most events the first time window after opening is sized for from the rate of its first
#: events (:meth:`EventReader._window_from_rate`; 64 MiB of EventCD): an array that large is
#: allocated, but only the pages the events fill are faulted in.
_RATE_GUESS_EVENTS = 1 << 22


def _with_margin(events: int) -> int:
    """The size of a window's array for ``events`` expected: a quarter more, so that the
    next window, a little longer, needs no regrowth."""
    return events + events // 4


def copy_records(records: np.ndarray) -> np.ndarray:
    """A copy of a contiguous 1-D structured array, made as a byte copy.

    numpy copies structured dtypes with padding (EventCD has 2 padding bytes) field by field,
    about 7x slower than copying the same bytes.
    """
    return records.view(np.uint8).copy().view(records.dtype)


def assign_records(target: np.ndarray, source: np.ndarray) -> None:
    """``target[:] = source`` for contiguous structured arrays of one dtype, as a byte copy."""
    target.view(np.uint8)[:] = source.view(np.uint8)


@numba.njit(cache=True, nogil=True)
def prefix_before(t: np.ndarray, start: int, stop: int, t_end: int) -> int:
    """Index of the first ``i`` in ``[start, stop)`` with ``t[i] >= t_end`` (``stop`` if none).

    Galloping search (doubling steps, then bisection): O(log) for time-ordered events, which
    every valid recording is. Out-of-order events (only in corrupted files) stay in file order:
    each event is still returned exactly once, though possibly in a neighbouring window.
    """
    if start >= stop or t[start] >= t_end:
        return start
    lo = start          # t[lo] < t_end
    step = 1
    hi = start + 1
    while hi < stop and t[hi] < t_end:
        lo = hi
        step *= 2
        hi = lo + step
    if hi > stop:
        hi = stop
    while hi - lo > 1:   # t[lo] < t_end, and t[hi] >= t_end or hi == stop
        mid = (lo + hi) // 2
        if t[mid] < t_end:
            lo = mid
        else:
            hi = mid
    return hi


class EventReader:
    """Base class of the event readers; see the module docstring for the cursor semantics.

    Args:
        path: the file read.
        buffer_events: capacity, in events, of the internal decode buffer (bounds memory).
        out_of_bounds: policy for events outside the sensor geometry (:data:`OutOfBounds`).
    """

    #: dtype of the decoded events (EventCD for event files).
    dtype: np.dtype = EventCD
    #: what the file is, in words (``evstream info``'s format column)
    format_name: str = "events"

    def __init__(self, path: str | os.PathLike, buffer_events: int = 1 << 19,
                 out_of_bounds: OutOfBounds = "warn"):
        if out_of_bounds not in OUT_OF_BOUNDS_POLICIES:
            raise ArgumentError(f"out_of_bounds must be one of {OUT_OF_BOUNDS_POLICIES}, "
                                f"not {out_of_bounds!r}", path)
        self.path = os.fspath(path)
        self.out_of_bounds = out_of_bounds
        #: events dropped because they lie outside the sensor geometry, in the part of the
        #: file decoded so far (a part decoded twice after a seek back is counted once)
        self.out_of_bounds_count = 0
        self._buffer_events = int(buffer_events)
        #: the arrays of long results (decoded straight into them), reused once the caller
        #: holds nothing of them any more: no fresh pages to fault in per window
        self._long_windows = RecycledArrays(keep=2)
        self._buf = np.empty(0, dtype=self.dtype)
        #: size of the last long time window, to size the next one (a seek keeps it: windows
        #: after a seek are as long as before it, and their arrays need no regrowth)
        self._window_guess = 0
        self._reset_cursor()

    # ----------------------------------------------------------------- source hooks
    def _decode_into(self, out: np.ndarray) -> int:
        """Decode the next events of the file into ``out``; return how many (0 at the end)."""
        raise NotImplementedError

    def _decode_until(self, out: np.ndarray, t_end: int | None) -> tuple[int, bool]:
        """``_decode_into``, for a source that can also stop exactly before the first event
        (in file order) with ``t >= t_end`` (reader time): returns ``(count, whether it stopped
        there)``; the events after it stay in the file. This default never stops early."""
        return self._decode_into(out), False

    def _rewind(self) -> None:
        """Position the source at the first event of the file."""
        raise NotImplementedError

    def _size_hint(self) -> int:
        """A guess of the number of events in the file, used to size :meth:`read_all`'s output."""
        return 1 << 20

    def _seek_hint_event(self, n: int) -> int:
        """Position the source at an event index ``k <= n`` and return ``k``."""
        self._rewind()
        return 0

    def _seek_hint_time(self, t: int) -> int:
        """Position the source at an event index ``k`` such that every event before ``k`` has a
        timestamp ``< t``; return ``k``."""
        self._rewind()
        return 0

    # ----------------------------------------------------------------- buffer management
    def _reset_cursor(self) -> None:
        self.current_time = 0
        self.done = False
        self._index = 0          # event index of the cursor
        self._buf_start = 0      # pending events are self._buf[_buf_start:_buf_stop]
        self._buf_stop = 0
        self._eof = False
        self._read_ahead = _FIRST_READ_AHEAD   # most events the next buffer decode produces

    def _decode_more(self) -> bool:
        """Decode more events after the pending ones (at most :meth:`_next_room`); False at
        the end of the file.

        The buffer keeps the pending events contiguous: it is compacted when they fit in its
        first half and doubled otherwise, so it grows to the largest window asked for (memory is
        bounded by the window, not the file) and every event is copied once on its way out.
        """
        if self._eof:
            return False
        pending = self._pending()
        if len(self._buf) - self._buf_stop < max(_MIN_ROOM, self._buffer_events // 2):
            if pending <= len(self._buf) // 2 and len(self._buf):
                assign_records(self._buf[:pending], self._buf[self._buf_start:self._buf_stop])
            else:
                grown = np.empty(max(2 * len(self._buf), self._buffer_events), dtype=self.dtype)
                assign_records(grown[:pending], self._buf[self._buf_start:self._buf_stop])
                self._buf = grown
            self._buf_start, self._buf_stop = 0, pending
        n = self._decode_into(self._buf[self._buf_stop:self._buf_stop + self._next_room()])
        self._buf_stop += n
        if n == 0:
            self._eof = True
        return n > 0

    def _next_room(self) -> int:
        """The most events the next decode call may produce: ``_FIRST_READ_AHEAD`` after
        opening or a seek, then twice the last, up to the buffer size."""
        room = max(self._read_ahead, _MIN_ROOM)
        self._read_ahead = min(2 * room, max(self._buffer_events, _MIN_ROOM))
        return room

    def _pending(self) -> int:
        return self._buf_stop - self._buf_start

    def _ensure_pending(self) -> bool:
        """At least one pending event, decoding more if needed; False at the end of the file."""
        while self._pending() == 0:
            if not self._decode_more():
                return False
        return True

    def _take(self, n_max: int | None, t_end: int | None) -> np.ndarray:
        """Consume pending events: at most ``n_max`` and only before the first ``t >= t_end``.

        With no pending event, a time window expected to outgrow the buffer (the last one
        did) or a count of at least ``_FIRST_READ_AHEAD`` events is decoded straight into its
        array (``_take_decoding``), without filling the buffer first."""
        direct = self._pending() == 0 and not self._eof and (
            (t_end is not None and self._window_guess >= self._buffer_events)
            or (n_max is not None and n_max >= _FIRST_READ_AHEAD))
        if self._pending() == 0 and not direct:
            self._decode_more()
        start = self._buf_start
        stop = self._buf_stop if n_max is None else min(self._buf_stop, start + n_max)
        cut = stop if t_end is None else prefix_before(self._buf["t"], start, stop, t_end)
        if not direct and (cut < self._buf_stop or cut - start == n_max or self._eof):
            # the result lies within the pending events
            events = copy_records(self._buf[start:cut])
            self._buf_start = cut
            hit_time_limit = t_end is not None and cut < stop
        else:
            events, hit_time_limit = self._take_decoding(n_max, t_end)
        self._index += len(events)
        if not hit_time_limit and not self._ensure_pending():
            self.done = True
        return events

    def _take_decoding(self, n_max: int | None, t_end: int | None) -> tuple[np.ndarray, bool]:
        """``_take`` for a result longer than the pending events: the rest is decoded straight
        into the returned array (no second copy); the events decoded past the cut go back to
        the buffer (none when the source stops at ``t_end`` itself, :meth:`_decode_until`).
        Each decode call produces at most the read-ahead (:meth:`_next_room`); for a
        count-limited result, what its count still needs when that is ``_FIRST_READ_AHEAD`` or
        more, else the larger of the two. Returns (events, whether the time limit cut them)."""
        pending = self._pending()
        if n_max is None:
            guess = self._window_guess or self._window_from_rate(t_end)
            size = max(guess, pending + self._buffer_events)
        else:    # the count, up to one buffer past the pending events or, for a longer count,
            # up to the events the file has left (estimated, with the margin that keeps the
            # growth rule below from firing at its end; a count beyond them grows)
            ahead = self._buffer_events
            if n_max > pending + ahead:
                ahead = max(ahead, _with_margin(self._size_hint() - self._index - pending))
            size = max(min(n_max, pending + ahead), pending + self._read_ahead)
        out = self._long_windows.at_least(size + _MIN_ROOM, self.dtype)
        assign_records(out[:pending], self._buf[self._buf_start:self._buf_stop])
        self._buf_start = self._buf_stop = 0
        n, scanned, at_t_end = pending, 0, False
        # a long count read fills its array in steps, its pages faulted in ahead on another core
        warm = n_max is not None and out.nbytes >= _WARM_COUNT_BYTES
        warmer = PageWarmer(out) if warm else None
        try:
            while True:
                stop = n if n_max is None else min(n, n_max)
                cut = stop if t_end is None else prefix_before(out["t"], scanned, stop, t_end)
                hit_time_limit = cut < stop or at_t_end
                scanned = cut
                if cut < n or cut == n_max or at_t_end:
                    break
                room = self._next_room()
                if n_max is not None:
                    need = n_max - n + _MIN_ROOM
                    room = need if need >= _FIRST_READ_AHEAD else max(room, need)
                # grow only when the free part is small against the read-ahead and the array
                # itself: a window sized by its guess then ends without regrowth (asking for
                # half the read-ahead free regrew, copying it, every window of one to two
                # buffer sizes)
                if len(out) - n < min(room // 2, len(out) // 8) + _MIN_ROOM:
                    grown = self._long_windows.at_least(2 * len(out), self.dtype)
                    assign_records(grown[:n], out[:n])
                    out = grown
                    if warm:
                        warmer.close()
                        warmer = PageWarmer(out)
                if warm:
                    room = min(room, _READ_ALL_STEP)
                decoded, at_t_end = self._decode_until(out[n:min(len(out), n + room)], t_end)
                if decoded == 0 and not at_t_end:
                    self._eof = True
                    break
                n += decoded
                if warm:
                    warmer.advance(n * out.itemsize)
        finally:
            if warm:
                warmer.close()
        overflow = n - scanned
        if len(self._buf) < overflow:
            self._buf = np.empty(max(overflow, self._buffer_events), dtype=self.dtype)
        assign_records(self._buf[:overflow], out[scanned:n])
        self._buf_stop = overflow
        if t_end is not None:          # a count read sizes itself: the guess is for windows
            self._window_guess = _with_margin(scanned)
        return out[:scanned], hit_time_limit

    def _window_from_rate(self, t_end: int | None) -> int:
        """The size of a time window ending at ``t_end`` (reader µs) for a reader with no earlier
        window to take it from (just opened): the pending events' rate extrapolated to
        ``t_end``, with the margin of later guesses, at most :data:`_RATE_GUESS_EVENTS` (the
        first events may be a burst); 0 without a time limit or with all pending events at one
        time."""
        if t_end is None or self._pending() < 2:
            return 0
        t = self._buf["t"]
        t_first, t_last = int(t[self._buf_start]), int(t[self._buf_stop - 1])
        if t_last <= t_first:
            return 0
        expected = self._pending() * (t_end - t_first) // (t_last - t_first)
        return min(_with_margin(expected), _RATE_GUESS_EVENTS)

    def _last_time_of_file(self) -> int:
        """Timestamp of the last event of the file (sources that know it faster override)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- public API
    def load_n_events(self, n_events: int) -> np.ndarray:
        """The next ``n_events`` events (fewer at the end of the file)."""
        n_events = int(n_events)
        if n_events < 1:
            raise ArgumentError(f"load_n_events needs n_events >= 1, got {n_events}", self.path)
        return self._load_slice(n_events, None)[0]

    def load_delta_t(self, delta_t: int) -> np.ndarray:
        """Events in ``[current_time, current_time + delta_t)`` from the cursor on (µs)."""
        delta_t = int(delta_t)
        if delta_t < 1:
            raise ArgumentError(f"load_delta_t needs delta_t >= 1 µs, got {delta_t}", self.path)
        return self._load_slice(None, delta_t)[0]

    def load_mixed(self, n_events: int, delta_t: int) -> np.ndarray:
        """At most ``n_events`` events and only those before ``current_time + delta_t``.

        ``current_time`` follows whichever limit cut the slice (see the module docstring).
        """
        n_events, delta_t = int(n_events), int(delta_t)
        if n_events < 1 or delta_t < 1:
            raise ArgumentError(f"load_mixed needs n_events >= 1 and delta_t >= 1, got "
                                f"{n_events}, {delta_t}", self.path)
        return self._load_slice(n_events, delta_t)[0]

    def _load_slice(self, n_max: int | None, delta_t: int | None,
                    start: int | None = None) -> tuple[np.ndarray, int]:
        """The events from the cursor: at most ``n_max`` and, with ``delta_t``, only those before
        ``start + delta_t`` (``start`` defaults to ``current_time``).

        Sets ``current_time`` by this reader's rule and returns ``(events, time)`` where
        ``time`` follows the DAT rule whatever the reader (what :class:`EventsIterator` reports,
        so that a RAW file and its DAT conversion iterate identically).
        """
        start = self.current_time if start is None else start
        t_end = None if delta_t is None else start + delta_t
        events = self._take(n_max, t_end)
        count_cut = (n_max is not None and len(events) == n_max and not self.done
                     and (t_end is None or not self._next_is_at_or_after(t_end)))
        limit = None if count_cut else t_end
        self.current_time = self._time_after(events, limit, start)
        return events, EventReader._time_after(self, events, limit, start)

    def _time_after(self, events: np.ndarray, t_end: int | None, start: int) -> int:
        """``current_time`` after a load that returned ``events``; ``t_end`` is the end of its
        time window, None when the event count cut it. DAT rule: the window end while the file
        goes on, else the last returned ``t`` (``start`` when nothing was returned)."""
        if t_end is not None and not self.done:
            return t_end
        return int(events["t"][-1]) if len(events) else start

    def _next_is_at_or_after(self, t_end: int) -> bool:
        return self._ensure_pending() and self._buf["t"][self._buf_start] >= t_end

    def seek_event(self, n_events: int) -> None:
        """Move the cursor to event ``n_events`` (0-based); ``current_time`` becomes the ``t`` of
        the last event before it (0 for ``n_events == 0``). Past the end: cursor at the end,
        done, ``current_time`` = last ``t``."""
        n_events = int(n_events)
        if n_events < 0:
            raise SeekError(f"seek_event needs a non-negative event index, got {n_events}",
                            self.path)
        self._reset_cursor()
        self._index = self._seek_hint_event(n_events)
        last_t = None
        while self._index < n_events and self._ensure_pending():
            step = min(self._pending(), n_events - self._index)
            self._buf_start += step
            self._index += step
            last_t = int(self._buf["t"][self._buf_start - 1])
        if last_t is None and n_events > 0:
            last_t = self._time_before_cursor()
        self.current_time = 0 if last_t is None else last_t
        self.done = not self._ensure_pending()

    def _time_before_cursor(self) -> int:
        """``t`` of the event just before the cursor when a hint landed exactly on it."""
        raise NotImplementedError

    def seek_time(self, t: int) -> None:
        """Move the cursor to the first event with ``t_event >= t`` (µs); ``current_time = t``.
        Past the last event: cursor at the end, done, ``current_time`` = last ``t``."""
        t = int(t)
        if t < 0:
            raise SeekError(f"seek_time needs a non-negative time in µs, got {t}", self.path)
        self._reset_cursor()
        self._index = self._seek_hint_time(t)
        while self._ensure_pending():
            start = self._buf_start
            self._buf_start = prefix_before(self._buf["t"], start, self._buf_stop, t)
            self._index += self._buf_start - start
            if self._pending():
                break
        if self._pending():
            self.current_time = t
        else:
            self.done = True
            self.current_time = self._last_time_of_file()

    def read_all(self) -> np.ndarray:
        """Every event of the file, decoded straight into one array (the fast whole-file path).

        A reader may decode the file on several threads (RAW: :mod:`evstream.io.raw_parallel`);
        on one, a background thread faults the output's pages in a little ahead of the decoder
        (:class:`~evstream.utils.page_warmer.PageWarmer`). The cursor ends at the end of the file
        (done).
        """
        self._reset_cursor()
        self._rewind()
        out, n = self._read_all_start()
        if not self._eof:
            out, n = self._decode_rest(out, n)
        self._index, self.done, self._eof = n, True, True
        if n:
            self.current_time = int(out["t"][n - 1])
        return out[:n] if 2 * n > len(out) else copy_records(out[:n])

    def _decode_rest(self, out: np.ndarray, n: int) -> tuple[np.ndarray, int]:
        """Decode the rest of the file behind the ``n`` events of ``out``, growing it (to twice
        its size at least, copied) when full, with a :class:`~evstream.utils.page_warmer.PageWarmer`
        ahead of the decoder; return the output and its event count."""
        warmer = PageWarmer(out)
        try:
            if n:
                warmer.advance(n * out.itemsize)
            while True:
                if len(out) - n < _MIN_ROOM:
                    warmer.close()
                    grown = np.empty(max(2 * len(out), n + _MIN_ROOM), dtype=self.dtype)
                    warmer = PageWarmer(grown)
                    assign_records(grown[:n], out[:n])
                    out = grown
                decoded = self._decode_into(out[n:n + _READ_ALL_STEP])
                if decoded == 0:
                    return out, n
                n += decoded
                warmer.advance(n * out.itemsize)
        finally:
            warmer.close()

    def _read_all_start(self) -> tuple[np.ndarray, int]:
        """:meth:`read_all`'s output and the events a reader decoded into it by a faster path
        of its own (none here), the cursor's source positioned after them; ``_eof`` set when
        they are the whole file."""
        return np.empty(self._size_hint() + _MIN_ROOM, dtype=self.dtype), 0

    def last_event_time(self) -> int | None:
        """Timestamp (µs, reader time) of the file's last event in file order, None for a file
        without events. RAW: decodes the rest of the file once if it was not decoded yet."""
        if self.event_count() == 0:
            return None
        return self._last_time_of_file()

    def event_count(self) -> int:
        """Number of events in the file."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (readers holding a handle override this); idempotent."""

    def __enter__(self):
        return self

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a half-built reader, or interpreter shutdown
            pass

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "done" if self.done else f"next event {self._index}"
        return (f"{type(self).__name__}({self.path!r}, {state}, current_time={self.current_time} "
                f"us)")

    def reset(self) -> None:
        """Back to the first event, ``current_time = 0``."""
        self._reset_cursor()
        self._rewind()
        self.done = not self._ensure_pending()

    def is_done(self) -> bool:
        """True once the cursor has reached the end of the file."""
        return self.done

    def current_event_index(self) -> int:
        """Index (0-based) of the next event the cursor returns."""
        return self._index

    # ----------------------------------------------------------------- geometry checks
    def _report_out_of_bounds(self, n_dropped: int, height: int | None, width: int | None) -> None:
        """Account for events a decoder dropped because they were outside the geometry."""
        if n_dropped <= 0:
            return
        first = self.out_of_bounds_count == 0
        self.out_of_bounds_count += n_dropped
        where = f"outside the {width}x{height} sensor geometry"
        if self.out_of_bounds == "raise":
            raise GeometryError(f"{n_dropped} event(s) {where} (out_of_bounds='raise')", self.path)
        if first:
            warnings.warn(f"{self.path}: dropping events {where} (first {n_dropped}; the running "
                          f"total is in reader.out_of_bounds_count; pass out_of_bounds='keep' to "
                          f"keep them or height=/width= if the geometry is wrong)", stacklevel=4)



class RecordFileReader(EventReader):
    """Base of the readers whose file holds one record per event, readable by index (DAT, NPY,
    HDF5): subclasses keep the record count in ``_count`` and the source position (the next
    record ``_decode_into`` reads) in ``_row``, and read one record's time with ``_time_at(i)``.
    The seek hints, sizes and durations below follow from those, once for every such format."""

    _count: int = 0
    _row: int = 0

    def _time_at(self, i: int) -> int:
        """Timestamp (µs) of record ``i``, read directly from the file."""
        raise NotImplementedError

    def _rewind(self) -> None:
        self._row = 0

    def _size_hint(self) -> int:
        return self._count

    def _seek_hint_event(self, n: int) -> int:
        self._row = min(n, self._count)
        return self._row

    def _seek_hint_time(self, t: int) -> int:
        # records are chronological in a valid file: binary search on the time field
        self._row = bisect.bisect_left(range(self._count), t, key=self._time_at)
        return self._row

    def _time_before_cursor(self) -> int:
        return self._time_at(self._row - 1) if self._row > 0 else 0

    def _last_time_of_file(self) -> int:
        return self._time_at(self._count - 1) if self._count else 0

    def event_count(self) -> int:
        """Number of records (events) in the file."""
        return self._count

    @property
    def duration_s(self) -> float:
        """Span between the first and last event, in seconds (metavision_core's definition)."""
        if self._count == 0:
            return 0.0
        return (self._last_time_of_file() - self._time_at(0)) * 1e-6
