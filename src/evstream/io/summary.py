"""One-pass statistics of a recording or a box file (what ``evstream info`` prints).

Work and memory are bounded by the events read, never by the time they span: a file whose time
base loops thousands of times (2^34 µs per EVT 2 loop) or goes backwards is summarised in one
pass over its events, with one counter per 10 ms window that actually holds events.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .dispatch import open_reader
from .npy import EventNpyReader, is_box_dtype, npy_dtype

#: Window over which the peak event rate is measured (µs).
PEAK_WINDOW_US = 10_000
BOX_FORMAT = "boxes (NPY)"


@dataclass(frozen=True)
class RecordingSummary:
    """What a file holds. Times in µs as the reader reports them (RAW: time-shifted).

    Attributes:
        format: e.g. ``"RAW EVT 3.0"``, ``"DAT"``, or :data:`BOX_FORMAT` for a box file
            (``event_count`` then counts boxes).
        first_t, last_t: times of the first and last event in file order.
        min_t, max_t: smallest and largest time (differ from first/last when time goes back).
        backward_steps: number of events whose time is below the previous event's.
        trigger_count: external triggers (RAW and Prophesee HDF5 files), None for formats that
            carry none.
    """

    path: str
    format: str
    height: int | None
    width: int | None
    event_count: int
    first_t: int | None
    last_t: int | None
    min_t: int | None
    max_t: int | None
    backward_steps: int
    trigger_count: int | None
    peak_rate_ev_s: float

    @property
    def is_box_file(self) -> bool:
        return self.format == BOX_FORMAT

    @property
    def duration_us(self) -> int:
        """Span from the smallest to the largest time (0 without events)."""
        return 0 if self.min_t is None else self.max_t - self.min_t

    @property
    def mean_rate_ev_s(self) -> float:
        """Events per second over the span (0 for a span of 0)."""
        return self.event_count / (self.duration_us * 1e-6) if self.duration_us else 0.0


class _TimeStats:
    """Running count, first/last/min/max time, backward steps and event counts per window of
    :data:`PEAK_WINDOW_US` (windows counted from the first event, only those holding events)."""

    def __init__(self) -> None:
        self.count = 0
        self.first_t = self.last_t = self.min_t = self.max_t = None
        self.backward_steps = 0
        self.windows: Counter = Counter()

    def add(self, t: np.ndarray) -> None:
        if not len(t):
            return
        t = t.astype(np.int64, copy=False)
        if self.first_t is None:
            self.first_t = self.min_t = self.max_t = int(t[0])
        else:
            self.backward_steps += int(t[0] < self.last_t)
        self.backward_steps += int(np.count_nonzero(t[1:] < t[:-1]))
        self.last_t = int(t[-1])
        self.min_t = min(self.min_t, int(t.min()))
        self.max_t = max(self.max_t, int(t.max()))
        self.count += len(t)
        ids, counts = np.unique((t - self.first_t) // PEAK_WINDOW_US, return_counts=True)
        self.windows.update(dict(zip(ids.tolist(), counts.tolist())))

    @property
    def peak_rate(self) -> float:
        return max(self.windows.values()) / (PEAK_WINDOW_US * 1e-6) if self.windows else 0.0


def summarize(path: str | os.PathLike, chunk_events: int = 1 << 20, **reader_kwargs) -> RecordingSummary:
    """Read a recording (or a ``.npy`` box file) once, in bounded chunks, and describe it."""
    path = os.fspath(path)
    if path.lower().endswith(".npy") and os.path.isfile(path) and is_box_dtype(npy_dtype(path)):
        reader = EventNpyReader(path)
        fmt = BOX_FORMAT
    else:
        reader = open_reader(path, **reader_kwargs)
        fmt = reader.format_name
    with reader:
        size = reader.get_size()
        height, width = (None, None) if size is None else (int(size[0]), int(size[1]))
        stats = _TimeStats()
        while not reader.is_done():
            events = reader.load_n_events(chunk_events)
            if not len(events):
                break
            stats.add(events["t"])
        triggers = (len(reader.get_ext_trigger_events())
                    if hasattr(reader, "get_ext_trigger_events") else None)
    return RecordingSummary(path, fmt, height, width, stats.count, stats.first_t, stats.last_t,
                            stats.min_t, stats.max_t, stats.backward_steps, triggers,
                            float(stats.peak_rate))
