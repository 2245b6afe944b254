"""Events of one recording as RVT's preprocessing sees them, read through ``evstream.io``.

RVT reads ``x, y, p, t`` in file order and makes ``t`` non-decreasing by a running maximum that
starts at 0 (``r_k = max(t_k, r_{k-1})``): events are never reordered or dropped, an event only
has its time raised to the largest earlier time; ``p`` is clipped at 0 from below (a -1 polarity
becomes 0) and must then be 0 or 1. That is the ``time_order="repair"`` rule of the io readers
(:mod:`evstream.io.time_order`; with a first time ``>= 0``, which RVT asserts, a running maximum
from 0 and one from the first event are the same), so :class:`RepairedEvents` opens:

* DAT files with :class:`~evstream.io.dat.EventDatReader` (``time_order="repair"``; evstream's
  default for DAT is to raise on a backward time, RVT's rule keeps the file);
* RVT's HDF5 event files (group ``events`` with 1-D datasets ``x, y, p, t``) with
  :class:`~evstream.io.hdf5_events.HDF5EventArraysReader` (``time_order="repair"``, which
  also clips ``p <= 0`` to 0);
* anything else :func:`evstream.io.open_reader` opens (RAW, NPY, Prophesee HDF5 ``/CD/events``)
  through :class:`RepairedReader`, which applies the same rule to any reader (RAW times are
  shifted to the first TIME_HIGH word, as everywhere in evstream).

Events outside the sensor are kept here (``out_of_bounds="keep"``), as RVT keeps them: the
frame drops and counts them (:mod:`evstream.rvt.representation`), after they took part in the
window's time normalisation and event count. The readers count and warn once about backward
times (``time_repaired_count``).

Reads use the readers' cursors: ``seek_time`` is exact on the repaired times (a block index
of the running maximum, built lazily by one pass over the times up to the target), and
sequential reads need no index.
"""

from __future__ import annotations

import os

import h5py
import numba
import numpy as np

from evstream.errors import EventArrayError, FileFormatError, MissingFileError
from evstream.io import EventCD, open_reader
from evstream.io.dtypes import event_words
from evstream.io.dat import EventDatReader
from evstream.io.hdf5_events import HDF5EventArraysReader
from evstream.io.reader import EventReader
from evstream.io.time_order import NO_TIME, RunningMaxIndex, order_time, report_late_events

#: Events a reader decodes at a time (its buffer; also the step of a long read).
READ_EVENTS = 1 << 16


@numba.njit(cache=True, nogil=True)
def first_at_or_after_time(events, t):
    """Index of the first event of ``events`` (EventCD, sorted by t) with ``t >= t``
    (binary search on the field, no copy)."""
    lo, hi = 0, len(events)
    while lo < hi:
        mid = (lo + hi) // 2
        if events[mid].t < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def copy_repaired(source, target, running, count_from):
    """``target[i] = source[i]`` for EventCD arrays seen as ``int64[N, 2]`` (x, y, p in the first
    word, p the int16 at bits 32-47; t the second), in one pass: a negative ``p`` becomes 0 and
    ``t`` follows the ``"repair"`` rule after running maximum ``running``. Returns (running
    maximum after them, late events at indices ``>= count_from``)."""
    late = 0
    for i in range(source.shape[0]):
        xyp = source[i, 0]
        if (xyp >> 47) & 1:                       # p < 0: clear its 16 bits
            xyp &= ~np.int64(0xFFFF << 32)
        target[i, 0] = xyp
        target[i, 1], running, is_late = order_time(source[i, 1], running, True)
        if is_late and i >= count_from:
            late += 1
    return running, late


class RepairedReader(EventReader):
    """Any evstream reader with its times repaired by the running maximum, as an
    :class:`~evstream.io.reader.EventReader` (for the formats whose readers have no
    ``time_order``). Late events are counted in ``time_repaired_count`` and warned about once;
    ``p`` is clipped at 0 from below."""

    time_order = "repair"

    def __init__(self, inner: EventReader, buffer_events: int = READ_EVENTS):
        self._inner = inner
        self._count = int(inner.event_count())
        self._times = RunningMaxIndex(self._count, self._stored_times)
        self._row = 0
        self._running = NO_TIME
        self._furthest = 0
        # the stored events [_block_lo, _block_lo + len(_block)) last read for their times: a
        # seek reads a block's times (the index), then the events from within it
        self._block_lo = 0
        self._block = np.empty(0, EventCD)
        self.time_repaired_count = 0
        self.format_name = inner.format_name
        super().__init__(inner.path, buffer_events, "keep")
        self.done = self._count == 0

    def _stored_block(self, lo: int, hi: int) -> np.ndarray:
        """The stored events ``[lo, hi)``, kept until another block is read."""
        if lo != self._block_lo or hi - lo != len(self._block):
            if self._inner.current_event_index() != lo:
                self._inner.seek_event(lo)
            self._block = self._inner.load_n_events(hi - lo)   # the caller's own array
            self._block_lo = lo
        return self._block

    def _stored_times(self, lo: int, hi: int) -> np.ndarray:
        return self._stored_block(lo, hi)["t"]

    def _decode_into(self, out: np.ndarray) -> int:
        n = min(len(out), self._count - self._row)
        if n <= 0:
            return 0
        k = self._row - self._block_lo
        if 0 <= k < len(self._block):          # after a seek: no seek back in the inner reader
            events = self._block[k:k + n]
        else:
            if self._inner.current_event_index() != self._row:
                self._inner.seek_event(self._row)
            events = self._inner.load_n_events(n)
        n = len(events)
        self._running, late = copy_repaired(event_words(events), event_words(out[:n]), self._running,
                                            self._furthest - self._row)
        self._row += n
        self._furthest = max(self._furthest, self._row)
        report_late_events(self, late, -1, 0)
        return n

    def _rewind(self) -> None:
        self._row, self._running = 0, NO_TIME

    def _seek_hint_event(self, n: int) -> int:
        self._row = min(n, self._count)
        self._running = self._times.max_before(self._row)
        return self._row

    def _seek_hint_time(self, t: int) -> int:
        self._row = self._times.first_at_or_after(t)
        self._running = self._times.max_before(self._row)
        return self._row

    def _time_before_cursor(self) -> int:
        return self._times.max_before(self._row)

    def _last_time_of_file(self) -> int:
        return self._times.max_before(self._count) if self._count else 0

    def event_count(self) -> int:
        return self._count

    def get_size(self):
        return self._inner.get_size()

    def close(self) -> None:
        self._inner.close()


def is_rvt_h5(path: str) -> bool:
    """True when ``path`` is an HDF5 file with an ``events`` group (RVT's layout); raises
    :class:`~evstream.errors.FileFormatError` when that group lacks x, y, p or t."""
    try:
        with h5py.File(path, "r") as f:
            group = f.get("events")
            if not isinstance(group, h5py.Group):
                return False
            missing = [k for k in ("x", "y", "p", "t")
                       if not isinstance(group.get(k), h5py.Dataset)]
    except OSError:
        return False
    if missing:
        raise FileFormatError(f"RVT event file without events/{', events/'.join(missing)}", path)
    return True


def open_repaired(path: str | os.PathLike, **reader_kwargs) -> EventReader:
    """A reader of ``path`` reporting RVT's repaired times (module docstring);
    ``reader_kwargs`` go to :func:`evstream.io.open_reader` for RAW/NPY/Prophesee HDF5."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError("no such event file", path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".dat":
        return EventDatReader(path, "keep", READ_EVENTS, time_order="repair")
    if ext in (".h5", ".hdf5") and is_rvt_h5(path):
        return HDF5EventArraysReader(path, "keep", READ_EVENTS, time_order="repair")
    return RepairedReader(open_reader(path, **reader_kwargs))


class RepairedEvents:
    """The events of one recording with RVT's repaired times (module docstring).

    Args:
        path: DAT, RAW, NPY, Prophesee HDF5 (``/CD/events``) or RVT HDF5 (``events/x...``) file.
        reader_kwargs: forwarded to :func:`evstream.io.open_reader` for RAW/NPY/Prophesee HDF5.

    Reads return EventCD arrays in file order, ``t`` the repaired time (int64 µs), ``p`` in
    {0, 1} (another polarity raises :class:`~evstream.errors.EventArrayError`, as RVT asserts).
    They move one cursor: :meth:`seek_time` / :meth:`seek_event`, then :meth:`load_until`; a
    caller can :meth:`keep` the last events it read, so that the next window, which shares
    events with them, needs no seek back.
    """

    def __init__(self, path: str | os.PathLike, **reader_kwargs):
        self.path = os.fspath(path)
        self.reader = open_repaired(self.path, **reader_kwargs)
        self.count = self.reader.event_count()
        size = self.reader.get_size()
        #: ``(height, width)`` the file states (header, ``events/height``...), or None.
        self.geometry: tuple[int, int] | None = None if size is None or None in tuple(size) \
            else (int(size[0]), int(size[1]))
        # DAT polarities are one bit and its times unsigned: nothing to check
        self._check = not isinstance(self.reader, EventDatReader)
        if self._check and self.count:
            first = self.reader.load_n_events(1)
            self.reader.seek_event(0)
            if first["t"][0] < 0:
                raise EventArrayError(f"the first event has a negative time {int(first['t'][0])} "
                                      f"µs (RVT asserts t[0] >= 0)", self.path)
        self._kept, self._kept_cursor, self._kept_from = np.empty(0, EventCD), -1, None

    def _checked(self, events: np.ndarray) -> np.ndarray:
        if self._check and len(events) and events["p"].max() > 1:
            raise EventArrayError(f"polarity {int(events['p'].max())} outside {{0, 1}} (RVT "
                                  f"asserts 0 <= p <= 1)", self.path)
        return events

    @property
    def cursor(self) -> int:
        """Index of the next event a load returns."""
        return self.reader.current_event_index()

    @property
    def cursor_time(self) -> int:
        """The reader's ``current_time``: after :meth:`load_until(t) <load_until>`, ``t + 1``
        (the last event's time at the end of the file)."""
        return self.reader.current_time

    def seek_time(self, t: int) -> int:
        """Cursor to the first event with ``t >= t``; returns its index."""
        self.reader.seek_time(max(int(t), 0))
        return self.reader.current_event_index()

    def seek_event(self, n: int) -> None:
        self.reader.seek_event(n)

    def load_until(self, t: int) -> np.ndarray:
        """The events from the cursor with time ``<= t`` (the cursor moves past them)."""
        delta = int(t) + 1 - self.reader.current_time
        if delta < 1 or self.reader.is_done():
            return np.empty(0, EventCD)
        return self._checked(self.reader.load_delta_t(delta))

    def keep(self, events: np.ndarray, from_time: int | None = None) -> None:
        """Remember ``events``, the last events before the cursor (a compact copy): with
        ``from_time``, they are every event before the cursor with ``t >= from_time``. Valid
        until the cursor moves."""
        self._kept = events.copy()
        self._kept_cursor = self.cursor
        self._kept_from = from_time

    def kept(self) -> tuple[int, np.ndarray] | None:
        """``(index of the first, events)`` remembered by :meth:`keep`, None if the cursor
        moved since."""
        if self._kept_cursor != self.cursor:
            return None
        return self._kept_cursor - len(self._kept), self._kept

    def kept_from_time(self, t: int) -> tuple[int, np.ndarray] | None:
        """``(index, events)``: every event before the cursor with ``t >= t``, from what
        :meth:`keep` remembered, or None if it cannot tell (the cursor moved, or ``t`` is
        before the remembered ``from_time``)."""
        kept = self.kept()
        if kept is None or self._kept_from is None or t < self._kept_from:
            return None
        k = first_at_or_after_time(kept[1], t)
        return kept[0] + k, kept[1][k:]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Events ``[start, stop)`` by index."""
        start, stop = max(int(start), 0), min(int(stop), self.count)
        if stop <= start:
            return np.empty(0, EventCD)
        if self.reader.current_event_index() != start:
            self.reader.seek_event(start)
        return self._checked(self.reader.load_n_events(stop - start))

    def first_at_or_after(self, tau: int, right: bool = False) -> int:
        """Index of the first event with ``t >= tau`` (``t > tau`` with ``right``); moves the
        cursor there."""
        return self.seek_time(int(tau) + 1 if right else int(tau))

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "RepairedEvents":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
