"""One recording as a sequence of ``[T, C, H, W]`` float32 tensors: ``CDProcessorIterator`` (event
files, tensors built on the fly) and ``HDF5Iterator`` (precomputed tensor files, re-exported from
:mod:`evstream.data.hdf5_iterator`).

``CDProcessorIterator`` is the :class:`~evstream.data.chunks.ChunkSource` of event recordings (the
tensor files' is :class:`~evstream.data.chunks.TensorFileChunks`, re-exported here). It reads a
RAW (EVT 2.0 / 2.1 / 3.0), DAT, NPY or HDF5 event file with
:class:`~evstream.io.EventsIterator` one *chunk* of ``num_tbins`` bins at a time and turns each chunk
into a tensor with a :class:`~evstream.preprocessing.CDProcessor`:

* ``mode="delta_t"``: chunk ``k`` holds the events with ``start_ts + k·T·delta_t <= t < start_ts +
  (k+1)·T·delta_t`` and bin ``i`` of it the ``delta_t`` µs starting at ``i·delta_t``. The last chunk
  is returned even if the recording ends inside it (its later bins are empty).
* ``mode="n_events"``: chunk ``k`` holds events ``[k·T·n, (k+1)·T·n)`` and bin ``i`` of it exactly
  ``n = n_events`` of them (events ``[i·n, (i+1)·n)`` of the chunk); only the recording's last chunk
  may have fewer, filling its bins in order. Each bin is computed over its own time span (event
  times relative to the bin's first event, window = the bin's span + 1 µs), so every event of the
  bin is inside its window.

The time window of a chunk (:class:`ChunkInfo`, used for labels) is ``(start, start + duration]``
with consecutive windows contiguous: in delta_t mode ``start = start_ts + k·T·delta_t`` and
``duration = T·delta_t``; in n_events mode a window starts where the previous one ended (the first
at ``start_ts``) and ends at the chunk's last event time rounded up so that ``duration`` is a
positive multiple of ``T`` (so a label loader that splits ``duration // T`` per bin loses nothing;
:func:`evstream.timebins.n_events_window`).

**Sizes.** The tensor size ``(height, width)`` defaults to the sensor size. When the sensor is that
size times ``2^k`` on both axes, the events' coordinates are shifted right by ``k`` (exact,
``CDProcessor``'s ``downsampling_factor``). Any other size is reached by building the tensor at the
largest power-of-two reduction of the sensor that is still at least as large on both axes, then
resizing it with the one resize rule of every loader,
:func:`~evstream.preprocessing.tensor_file.resize_rows` (the mean over the covered cells when
neither axis grows, else bilinear with ``align_corners=True``, the original's resize);
precomputed tensor files are resized from their stored size with the same function. A file
that gives no sensor size (a DAT without ``Width``/``Height``) is read as if the sensor had the
requested size; events outside it are dropped (counted in ``stats["dropped"]``).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from evstream.data.chunks import ChunkInfo, TensorFileChunks, check_mode, new_stats
from evstream.data.hdf5_iterator import HDF5Iterator
from evstream.data.transformations import transform_ev_tensor
from evstream.errors import ArgumentError, GeometryError
from evstream.io import EventsIterator, RawReader
from evstream.preprocessing import CDProcessor, get_preprocess_dict
from evstream.preprocessing import fused as _fused
from evstream.preprocessing.tensor_file import (MODES, check_output_size, resize_method,
                                                resize_rows)
from evstream.timebins import n_events_window

__all__ = ["CDProcessorIterator", "HDF5Iterator", "TensorFileChunks", "ChunkInfo", "resize_plan",
           "MODES"]


def resize_plan(sensor_hw, out_hw) -> tuple[int, tuple[int, int], str | None]:
    """How to reach ``out_hw`` from ``sensor_hw``: ``(k, built_hw, resize)``.

    ``k`` is the event-domain downsampling factor, ``built_hw`` the size the tensor is built at
    and ``resize`` None (exact), ``"area"`` or ``"bilinear"``
    (:func:`~evstream.preprocessing.tensor_file.resize_method` from ``built_hw``).
    """
    (h0, w0), (h, w) = (int(sensor_hw[0]), int(sensor_hw[1])), check_output_size(out_hw)
    k = 0
    while (-(-h0 // (2 << k)) >= h) and (-(-w0 // (2 << k)) >= w):
        k += 1
    built = (-(-h0 // (1 << k)), -(-w0 // (1 << k)))
    return k, built, resize_method(built, (h, w))


class CDProcessorIterator:
    """Iterate over an event file as float32 torch tensors ``[num_tbins, C, height, width]``.

    Args:
        path: event file (RAW, DAT, NPY, HDF5 events).
        preprocess_function_name: registry name (``histo``, ``diff``, ...).
        mode: ``"delta_t"`` or ``"n_events"`` (see the module docstring).
        start_ts: first time read (µs, reader time: RAW times are shifted as in OpenEB).
        max_duration: read at most this many µs from ``start_ts`` (None: to the end).
        delta_t: bin duration in µs (delta_t mode).
        n_events: events per bin (n_events mode).
        num_tbins: T, bins per tensor.
        preprocess_kwargs: override the registry's default kwargs.
        device: torch device of the returned tensors.
        height, width: tensor size (default: the sensor size; see the module docstring).
        transforms: optional augmentation applied with
            :func:`~evstream.data.transformations.transform_ev_tensor` seeded by the path and
            ``base_seed`` (the same for every chunk of the file).
        base_seed: see ``transforms``.
        kwargs: forwarded to the reader (e.g. ``height``/``width`` are taken, so use
            ``reader_kwargs={"height": ..., "width": ...}`` for a RAW file without geometry).

    Each ``next()`` returns a new tensor. :meth:`next_chunk` fills a caller's array instead.
    ``stats`` counts chunks, events, dropped events and the decode / tensorize seconds.

    RAW EVT 3.0 / 2.0 files in delta_t mode with histo, diff or stacked_histogram take the fused path
    (:mod:`evstream.preprocessing.fused`: no EventCD window, same tensors; its time is counted
    in ``tensorize_s``); ``EVSTREAM_FUSED=0`` in the environment turns it off.
    """

    def __init__(self, path, preprocess_function_name, mode="delta_t", start_ts=0,
                 max_duration=None, delta_t=50000, n_events=10000, num_tbins=1,
                 preprocess_kwargs={}, device=torch.device("cpu"), height=None, width=None,
                 transforms=None, base_seed=0, reader_kwargs=None, **kwargs):
        path = os.fspath(path)
        check_mode(mode, delta_t, n_events, path)
        num_tbins = int(num_tbins)
        if num_tbins < 1:
            raise ArgumentError(f"num_tbins must be >= 1, got {num_tbins}", path)
        chunk_dt = int(delta_t) * num_tbins if mode == "delta_t" else 1
        chunk_n = int(n_events) * num_tbins if mode == "n_events" else 1
        iterator = EventsIterator(path, start_ts=int(start_ts), mode=mode, delta_t=chunk_dt,
                                  n_events=chunk_n, max_duration=max_duration,
                                  relative_timestamps=False, **dict(reader_kwargs or {}), **kwargs)
        self._setup(iterator, preprocess_function_name, num_tbins, preprocess_kwargs, device,
                    height, width, transforms, base_seed)

    @classmethod
    def from_iterator(cls, iterator, preprocess_function_name, num_tbins=1, preprocess_kwargs={},
                      device=torch.device("cpu"), height=None, width=None, transforms=None,
                      base_seed=0):
        """Wrap an existing :class:`~evstream.io.EventsIterator` (``relative_timestamps=False``):
        its slices are the chunks; in delta_t mode a bin is ``iterator.delta_t / T`` µs, in
        n_events mode ``ceil(iterator.n_events / T)`` events."""
        self = cls.__new__(cls)
        if getattr(iterator, "relative_timestamps", False):
            raise ArgumentError("from_iterator needs an EventsIterator with "
                                "relative_timestamps=False", getattr(iterator, "path", None))
        self._setup(iterator, preprocess_function_name, int(num_tbins), preprocess_kwargs, device,
                    height, width, transforms, base_seed)
        return self

    def _setup(self, iterator, name, num_tbins, preprocess_kwargs, device, height, width,
               transforms, base_seed):
        self.events_iterator = iterator
        self.path = getattr(iterator, "path", None)
        self.mode = iterator.mode
        if self.mode not in MODES:       # sizes are the iterator's (checked there)
            raise ArgumentError(f"mode must be one of {MODES}, got {self.mode!r}", self.path)
        self.num_tbins = num_tbins
        self.preprocess_function_name = name
        self.start_ts = int(iterator.start_ts)
        if self.mode == "delta_t":
            dt = iterator.delta_t / num_tbins
            self.delta_t, self.n_events = (int(dt) if dt == int(dt) else dt), 0
            self._chunk_duration = int(iterator.delta_t)
        else:
            self.delta_t, self.n_events = 0, -(-int(iterator.n_events) // num_tbins)
            self._chunk_duration = None
        size = iterator.get_size()
        sensor = None if size is None or None in tuple(size) else (int(size[0]), int(size[1]))
        if height is None or width is None:
            if sensor is None:
                raise GeometryError("the file gives no sensor size: pass height and width",
                                    self.path)
            height = sensor[0] if height is None else height
            width = sensor[1] if width is None else width
        self.height, self.width = int(height), int(width)
        self.sensor_size = sensor
        k, built, self.resize = resize_plan(sensor or (self.height, self.width),
                                            (self.height, self.width))
        self.downsampling_factor = k
        self.built_size = built
        self.cin = get_preprocess_dict(name)["cin"]
        bins = num_tbins if self.mode == "delta_t" else 1
        self.cd_proc = CDProcessor(built[0], built[1], bins, name, k, dict(preprocess_kwargs))
        self.device = torch.device(device)
        self.transforms = transforms
        self.base_seed = 0 if base_seed is None else int(base_seed)
        self.stats = new_stats()
        self._events = None
        self._chunks = 0
        self._window_end = self.start_ts
        self._fused = self._fused_chunks()

    def _fused_chunks(self):
        """The fused RAW -> tensor source (:mod:`evstream.preprocessing.fused`) when it gives the
        same tensors as decoding then tensorizing: delta_t mode, RAW EVT 3.0 / 2.0 read with the
        default out-of-bounds policy, the built-in histo, diff or stacked_histogram.
        ``EVSTREAM_FUSED=0`` in the environment turns it off. None otherwise."""
        it = self.events_iterator
        reader = getattr(it, "reader", None)
        if (os.environ.get("EVSTREAM_FUSED", "1") == "0" or self.mode != "delta_t"
                or not isinstance(it, EventsIterator) or not isinstance(reader, RawReader)
                or reader.header.encoding not in _fused.MACHINES or reader.out_of_bounds != "warn"
                or not _fused.fusable(self.preprocess_function_name,
                                      self.cd_proc.events_to_tensor)):
            return None
        return _fused.RawTensorChunks(reader, self._chunk_duration, it.start_ts, it.max_duration)

    def _next_fused_chunk(self, out: np.ndarray) -> ChunkInfo:
        """:meth:`next_chunk` through the fused source: no EventCD window is built; the
        processor's function accumulates the window's events piece by piece."""
        t0 = time.perf_counter()
        proc = self.cd_proc
        proc.array[...] = 0
        extra = {k: v for k, v in proc._extra.items() if k != "include_end"}

        def accumulate(events):
            return proc.events_to_tensor(events, proc.array, self._chunk_duration,
                                         downsampling_factor=proc.downsampling_factor,
                                         reset=False, **proc.preprocess_kwargs, **extra)

        result = self._fused.next_window(accumulate)
        if result is None:
            raise StopIteration
        n, dropped = result
        self.stats["dropped"] += dropped
        self._deliver(proc.array, out)
        start = self.start_ts + self._chunks * self._chunk_duration
        self._window_end = start + self._chunk_duration
        self._chunks += 1
        self.stats["chunks"] += 1
        self.stats["events"] += n
        self.stats["tensorize_s"] += time.perf_counter() - t0
        return ChunkInfo(start, self._chunk_duration, n)

    def get_size(self) -> tuple[int, int]:
        """``(height, width)`` of the returned tensors."""
        return self.height, self.width

    def get_time(self) -> int:
        """End (µs) of the window of the last returned chunk (``start_ts`` before the first)."""
        return self._window_end

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        out = np.empty((self.num_tbins, self.cin, self.height, self.width), np.float32)
        self.next_chunk(out)
        tensor = torch.from_numpy(out)
        if self.transforms is not None:
            tensor = transform_ev_tensor(tensor, self.path, self.transforms, self.base_seed)
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def next_chunk(self, out: np.ndarray) -> ChunkInfo:
        """Fill ``out`` (float32 ``[T, C, height, width]``) with the next chunk and return its
        :class:`ChunkInfo`; raises StopIteration after the last chunk."""
        if self._fused is not None:
            return self._next_fused_chunk(out)
        if self._events is None:
            self._events = iter(self.events_iterator)
        t0 = time.perf_counter()
        events = next(self._events)        # StopIteration ends the iteration
        t1 = time.perf_counter()
        n = len(events)
        stats = self.stats
        if self.mode == "delta_t":
            start = self.start_ts + self._chunks * self._chunk_duration
            duration = self._chunk_duration
            if n:
                events["t"] -= start
            self._tensorize(events, self._chunk_duration, out)
        else:
            if n == 0:
                self.stats["decode_s"] += t1 - t0
                raise StopIteration
            start, duration = n_events_window(self._window_end, int(events["t"][-1]),
                                               self.num_tbins)
            self._tensorize_by_count(events, out)
        self._window_end = start + duration
        self._chunks += 1
        stats["chunks"] += 1
        stats["events"] += n
        stats["decode_s"] += t1 - t0
        stats["tensorize_s"] += time.perf_counter() - t1
        return ChunkInfo(start, duration, n)

    def _tensorize(self, events, total, out) -> None:
        """``out`` (``[bins, C, H, W]``) = the processor's tensor of ``events`` over ``total`` µs."""
        array = self.cd_proc(events, total)
        self.stats["dropped"] += self.cd_proc.last_dropped or 0
        self._deliver(array, out)

    def _deliver(self, array, out) -> None:
        """``out`` = the processor's ``array``, cast to float32 and resized if needed (the one
        resize rule, :func:`~evstream.preprocessing.tensor_file.resize_rows`)."""
        resize_rows(array, out.shape[-2:], out=out)

    def _tensorize_by_count(self, events, out) -> None:
        per_bin = self.n_events
        for i in range(self.num_tbins):
            part = events[i * per_bin:(i + 1) * per_bin]
            if len(part) == 0:
                out[i:] = 0
                return
            t = part["t"]
            t -= t[0]
            self._tensorize(part, int(t[-1]) + 1, out[i:i + 1])

    def skip(self, n: int) -> None:
        """Drop the next ``n`` chunks (:class:`~evstream.data.chunks.ChunkSource`): their events
        are read and tensorized into a scratch buffer, so that the windows and the reader's
        cursor stay those of an uninterrupted run."""
        scratch = None
        for _ in range(int(n)):
            if scratch is None:
                scratch = np.empty((self.num_tbins, self.cin, self.height, self.width), np.float32)
            try:
                self.next_chunk(scratch)
            except StopIteration:
                return

    def close(self) -> None:
        if self._fused is not None:
            self._fused.close()
        self.events_iterator.reader.close()
