"""One-pass statistics of a recording (what ``evstream info`` prints)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .dispatch import open_reader
from .raw import RawReader

#: Window over which the peak event rate is measured (µs).
PEAK_WINDOW_US = 10_000


@dataclass(frozen=True)
class RecordingSummary:
    """What a recording holds. Times in µs as the reader reports them (RAW: time-shifted)."""

    path: str
    format: str
    height: int | None
    width: int | None
    event_count: int
    first_t: int | None
    last_t: int | None
    trigger_count: int | None
    peak_rate_ev_s: float

    @property
    def duration_us(self) -> int:
        """Span from the first to the last event (0 without events)."""
        return 0 if self.first_t is None else self.last_t - self.first_t

    @property
    def mean_rate_ev_s(self) -> float:
        """Events per second over the span (0 for a span of 0)."""
        return self.event_count / (self.duration_us * 1e-6) if self.duration_us else 0.0


def summarize(path: str | os.PathLike, chunk_events: int = 1 << 20, **reader_kwargs) -> RecordingSummary:
    """Read a recording once, in bounded chunks, and describe it."""
    reader = open_reader(path, **reader_kwargs)
    size = reader.get_size()
    height, width = (None, None) if size is None else (int(size[0]), int(size[1]))
    count = 0
    first_t = last_t = None
    window_counts = np.zeros(0, dtype=np.int64)
    while not reader.is_done():
        events = reader.load_n_events(chunk_events)
        if not len(events):
            break
        if first_t is None:
            first_t = int(events["t"][0])
        last_t = int(events["t"][-1])
        count += len(events)
        windows = np.bincount((events["t"] - first_t) // PEAK_WINDOW_US)
        if len(windows) > len(window_counts):
            window_counts = np.pad(window_counts, (0, len(windows) - len(window_counts)))
        window_counts[:len(windows)] += windows
    if isinstance(reader, RawReader):
        fmt = {"evt2": "RAW EVT 2.0", "evt21": "RAW EVT 2.1", "evt3": "RAW EVT 3.0"}[
            reader.header.encoding]
        triggers = len(reader.get_ext_trigger_events())
    else:
        fmt, triggers = type(reader).__name__.replace("Event", "").replace("Reader", "").upper(), None
    peak = window_counts.max() / (PEAK_WINDOW_US * 1e-6) if len(window_counts) else 0.0
    return RecordingSummary(os.fspath(path), fmt, height, width, count, first_t, last_t,
                            triggers, float(peak))
