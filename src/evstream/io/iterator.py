"""``EventsIterator``: a recording as a sequence of event slices (metavision_core compatible).

Modes:

* ``"delta_t"``: slice ``k`` holds the events with ``start_ts + k·delta_t <= t < start_ts +
  (k+1)·delta_t``; empty slices are yielded as empty arrays, so slice ``k`` always covers the
  same time window.
* ``"n_events"``: slices of ``n_events`` events (the last one may be shorter).
* ``"mixed"``: at most ``n_events`` events and at most ``delta_t`` µs per slice.

Iteration stops after the slice containing the last event of the file, or when the slices
reach ``start_ts + max_duration``. ``current_time`` follows the DAT cursor rule for every input
(see :mod:`evstream.io.reader`), so a RAW file and its DAT conversion give the same slices and
the same ``get_current_time()``. Each ``iter()`` starts again from ``start_ts``. Any
``start_ts >= 0`` is accepted (the original requires a multiple of ``delta_t``).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from ..errors import ArgumentError, ReaderStateError, UnsupportedFormatError
from .dispatch import open_reader

#: The two ways to cut a recording into bins that every layer shares (tensor-file rows, the
#: loaders' bins): fixed durations or fixed event counts.
BIN_MODES = ("delta_t", "n_events")
#: The slicing modes of :class:`EventsIterator`: the two above and ``"mixed"``.
MODES = BIN_MODES + ("mixed",)


class EventsIterator:
    """Iterate over a recording's events in slices.

    Args:
        input_path: event file (RAW, DAT, NPY).
        start_ts: time of the first slice (µs, in the reader's time: shifted for RAW by default).
        mode: ``"delta_t"``, ``"n_events"`` or ``"mixed"``.
        delta_t: slice duration (µs) in ``delta_t`` and ``mixed`` modes.
        n_events: events per slice in ``n_events`` and ``mixed`` modes (0 is accepted at
            construction, as OpenEB does, e.g. to read ``get_size()``; iterating needs >= 1).
        max_duration: stop at ``start_ts + max_duration`` (µs); None for the whole file.
        relative_timestamps: subtract each slice's start time from its events' ``t``.
        do_time_shifting: RAW only, see :class:`~evstream.io.raw.RawReader`.
        reader_kwargs: forwarded to the reader (``height``, ``width``, ``out_of_bounds`` ...).
    """

    def __init__(self, input_path: str | os.PathLike, start_ts: int = 0, mode: str = "delta_t",
                 delta_t: int = 10000, n_events: int = 10000, max_duration: int | None = None,
                 relative_timestamps: bool = False, do_time_shifting: bool = True,
                 **reader_kwargs):
        path = os.fspath(input_path)
        if mode not in MODES:
            raise ArgumentError(f"mode must be one of {MODES}, not {mode!r}", path)
        self.delta_t, self.n_events = int(delta_t), int(n_events)
        if mode in ("delta_t", "mixed") and self.delta_t < 1:
            raise ArgumentError(f"mode {mode!r} needs delta_t >= 1 µs, got {delta_t}", path)
        if mode in ("n_events", "mixed") and self.n_events < 0:
            raise ArgumentError(f"mode {mode!r} needs n_events >= 0, got {n_events}", path)
        if int(start_ts) < 0:
            raise ArgumentError(f"start_ts must be >= 0, got {start_ts}", path)
        if max_duration is not None and int(max_duration) < 1:
            raise ArgumentError(f"max_duration must be >= 1 µs or None, got {max_duration}", path)
        self.path = path
        self.mode = mode
        self.start_ts = int(start_ts)
        self.max_duration = None if max_duration is None else int(max_duration)
        self.relative_timestamps = relative_timestamps
        self.reader = open_reader(path, do_time_shifting=do_time_shifting, **reader_kwargs)
        self.current_time = self.start_ts
        self._iterated = False

    def get_size(self):
        """Sensor ``(height, width)`` as the reader reports it (None when unknown)."""
        return self.reader.get_size()

    def get_current_time(self) -> int:
        """End of the last slice yielded (µs); for the last slice, the time of the last event."""
        return self.current_time

    def get_ext_trigger_events(self) -> np.ndarray:
        """External trigger events (EventExtTrigger): for RAW input, those decoded so far in the
        current iteration, time-shifted like the events; for a Prophesee HDF5 event file, its
        ``/EXT_TRIGGER/events``.

        Raises:
            ReaderStateError: called before the first iteration.
            UnsupportedFormatError: the input format carries no trigger events (DAT, NPY).
        """
        if not self._iterated:
            raise ReaderStateError("get_ext_trigger_events() needs an iteration first (triggers "
                                   "are decoded with the events)", self.path)
        if not hasattr(self.reader, "get_ext_trigger_events"):
            raise UnsupportedFormatError(f"{type(self.reader).__name__} input carries no external "
                                         f"trigger events (RAW and Prophesee HDF5 files do)", self.path)
        return self.reader.get_ext_trigger_events()

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.mode in ("n_events", "mixed") and self.n_events < 1:
            raise ArgumentError(f"mode {self.mode!r} needs n_events >= 1 to iterate, got "
                                f"{self.n_events}", self.path)
        reader = self.reader
        if self.start_ts:
            reader.seek_time(self.start_ts)
        else:
            reader.reset()
        self._iterated = True
        self.current_time = reader.current_time
        end = None if self.max_duration is None else self.start_ts + self.max_duration
        while not reader.is_done():
            slice_start = self.current_time
            if end is not None and slice_start >= end:
                break
            time_left = None if end is None else end - slice_start
            if self.mode == "n_events":
                n_max, delta_t = self.n_events, time_left
            else:
                n_max = None if self.mode == "delta_t" else self.n_events
                delta_t = self.delta_t if time_left is None else min(self.delta_t, time_left)
            events, self.current_time = reader._load_slice(n_max, delta_t, slice_start)
            if self.relative_timestamps and len(events):
                events["t"] -= slice_start
            yield events
