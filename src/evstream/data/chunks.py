"""Chunk sources: one recording read as chunks of ``T`` time bins, each written into the
caller's buffer. The protocol both loaders' streaming path stands on (:class:`ChunkSource`), and
its tensor-file implementation (:class:`TensorFileChunks`); event recordings implement it with
:class:`~evstream.data.cd_processor_iterator.CDProcessorIterator`.

A chunk source has:

* ``next_chunk(out) -> ChunkInfo``: fill ``out`` (float32 ``[T, C, H, W]``) with the next chunk
  and return its label window (:class:`ChunkInfo`); raise ``StopIteration`` after the last one;
* ``skip(n)``: drop the next ``n`` chunks (a tensor file moves its row cursor: nothing is read);
* ``get_time()``: end (µs) of the window of the last chunk returned (``start_ts`` before the first);
* ``get_size()``: ``(H, W)`` of the chunks;
* ``stats``: counters (``chunks``, ``events``, ``dropped``, ``decode_s``, ``tensorize_s``);
* ``close()``.

Windows follow :mod:`evstream.timebins`: in ``delta_t`` mode chunk ``k`` covers ``(start_ts +
k·T·delta_t, start_ts + (k+1)·T·delta_t]`` for its labels, in ``n_events`` mode
:func:`~evstream.timebins.n_events_window`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from evstream.data.hdf5_iterator import HDF5Iterator
from evstream.errors import ArgumentError
from evstream.preprocessing.tensor_file import MODES
from evstream.timebins import n_events_window

__all__ = ["ChunkInfo", "ChunkSource", "TensorFileChunks", "check_mode", "new_stats"]


@dataclass(frozen=True)
class ChunkInfo:
    """What one chunk covers: the label window ``(start, start + duration]`` (µs, file time) and
    the number of events (0 for precomputed tensors) that went into it."""

    start: int
    duration: int
    n_events: int


@runtime_checkable
class ChunkSource(Protocol):
    """One recording as chunks (module docstring)."""

    stats: dict

    def next_chunk(self, out: np.ndarray) -> ChunkInfo: ...

    def skip(self, n: int) -> None: ...

    def get_time(self) -> int: ...

    def get_size(self) -> tuple[int, int]: ...

    def close(self) -> None: ...


def check_mode(mode, delta_t, n_events, path) -> None:
    """ArgumentError naming ``path`` unless ``mode`` is a bin mode with its size >= 1."""
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}", path)
    if mode == "delta_t" and not (delta_t is not None and int(delta_t) >= 1):
        raise ArgumentError(f"mode 'delta_t' needs delta_t >= 1 µs, got {delta_t!r}", path)
    if mode == "n_events" and not (n_events is not None and int(n_events) >= 1):
        raise ArgumentError(f"mode 'n_events' needs n_events >= 1, got {n_events!r}", path)


def new_stats() -> dict:
    """The counters of a chunk source, at zero."""
    return {"chunks": 0, "events": 0, "dropped": 0, "decode_s": 0.0, "tensorize_s": 0.0}


class TensorFileChunks:
    """A precomputed tensor file (``.h5``) read in chunks of ``num_tbins`` rows: a
    :class:`ChunkSource`, with the windows of the event recording it was made from.

    Unlike :class:`HDF5Iterator` (which it uses to open, validate, read and resize the file), a
    trailing chunk of fewer than ``num_tbins`` rows is returned, padded with zero bins. The file
    must have been made with ``preprocess_function_name`` and the loader's mode and ``delta_t`` /
    ``n_events`` (:meth:`HDF5Iterator.checks`). Rows are resized to ``(height, width)`` with
    :func:`~evstream.preprocessing.tensor_file.resize_rows`, as every loader does.
    """

    def __init__(self, path, preprocess_function_name, mode="delta_t", start_ts=0,
                 max_duration=None, delta_t=50000, n_events=10000, num_tbins=1,
                 preprocess_kwargs={}, height=None, width=None):
        path = os.fspath(path)
        check_mode(mode, delta_t, n_events, path)
        self.path, self.mode, self.num_tbins = path, mode, int(num_tbins)
        user_kwargs = {k: v for k, v in dict(preprocess_kwargs).items() if k != "preprocess_dtype"}
        self.h5 = HDF5Iterator(path, num_tbins=self.num_tbins, preprocess_kwargs=user_kwargs,
                               height=height, width=width)
        self.h5.checks(preprocess_function_name, delta_t if mode == "delta_t" else None, mode,
                       n_events if mode == "n_events" else 0)
        attrs = self.h5.attrs
        self.height, self.width = self.h5.height, self.h5.width
        self.cin = attrs.shape[0]
        self.start_ts = int(start_ts)
        rows = attrs.rows
        self._last_ts = self.h5.tensor_file.last_timestamps     # None in delta_t mode
        if mode == "delta_t":
            self.delta_t = int(attrs.delta_t)
            first = self.start_ts // self.delta_t
            stop = rows if max_duration is None else \
                -(-(self.start_ts + int(max_duration)) // self.delta_t)
        else:
            first = int(np.searchsorted(self._last_ts, self.start_ts, side="left"))
            stop = rows if max_duration is None else \
                int(np.searchsorted(self._last_ts, self.start_ts + int(max_duration), side="left"))
        self._row, self._stop = min(first, rows), min(max(stop, 0), rows)
        self._window_end = self.start_ts
        self.stats = new_stats()

    def get_size(self) -> tuple[int, int]:
        return self.height, self.width

    def get_time(self) -> int:
        return self._window_end

    def remaining(self) -> int:
        """Chunks left (a trailing partial chunk counts)."""
        return -(-max(self._stop - self._row, 0) // self.num_tbins)

    def _advance(self) -> tuple[int, int, ChunkInfo]:
        """Rows ``[r0, r1)`` of the next chunk and its window; moves the cursor past them."""
        if self._row >= self._stop:
            raise StopIteration
        r0, r1 = self._row, min(self._row + self.num_tbins, self._stop)
        if self.mode == "delta_t":
            start, duration = r0 * self.delta_t, self.num_tbins * self.delta_t
        else:
            start, duration = n_events_window(self._window_end, int(self._last_ts[r1 - 1]),
                                              self.num_tbins)
        self._row = r1
        self._window_end = start + duration
        return r0, r1, ChunkInfo(start, duration, 0)

    def next_chunk(self, out: np.ndarray) -> ChunkInfo:
        t0 = time.perf_counter()
        r0, r1, info = self._advance()
        rows = self.h5.read_rows(r0, r1)
        t1 = time.perf_counter()
        n = r1 - r0
        out[:n] = rows
        out[n:] = 0
        self.stats["chunks"] += 1
        self.stats["decode_s"] += t1 - t0
        self.stats["tensorize_s"] += time.perf_counter() - t1
        return info

    def skip(self, n: int) -> None:
        """Drop the next ``n`` chunks without reading their rows (the windows still follow)."""
        for _ in range(int(n)):
            try:
                self._advance()
            except StopIteration:
                return

    def close(self) -> None:
        self.h5.close()
