"""Streaming straight from recordings: ``CDProcessorDataLoader``
(``metavision_ml.data.cd_processor_dataset``).

``CDProcessorDataLoader`` plays ``batch_size`` recordings side by side with the stream loader of
:mod:`evstream.data.stream` and yields the batch dict of
:mod:`evstream.data.sequential_dataset_common`
(``inputs`` float32 ``[T, B, C, H, W]``, ``labels`` ``T x B``, ``mask_keep_memory`` ``[B, 1, 1, 1]``,
``frame_is_labeled`` bool ``[T, B]``, ``video_infos`` ``B`` tuples ``(FileMetadata, start, duration)``).
Each recording is read once, front to back, by one worker, which builds the tensors on the fly
(:class:`~evstream.data.cd_processor_iterator.CDProcessorIterator`) or reads them from a
precomputed tensor file (:class:`~evstream.data.cd_processor_iterator.TensorFileChunks`); RAW
(EVT 2.0 / 2.1 / 3.0), DAT, NPY and HDF5 event files and HDF5 tensor files can be mixed.

Per batch slot: the slot's recordings play back to back; ``mask_keep_memory`` is 0 on the first
chunk of each recording and 1 after; a slot with nothing left is filled with zeros, empty labels,
``keep_memory`` 0, an all-False ``frame_is_labeled`` and a PADDING ``FileMetadata``
(``padding_mode="zeros"``), or replays its recordings (``padding_mode="data"``). Slot assignment:
recording ``i`` (in list order, or in a seeded permutation with ``shuffle=True``) plays in slot
``i % batch_size``; the batches do not depend on ``num_workers``.

Labels come from ``load_labels(metadata, start, duration, tensor)`` (``docs/compatibility.md``) with
``metadata`` the recording's :class:`~evstream.data.scheduler.FileMetadata`, ``(start, start +
duration]`` the chunk's time window (see :mod:`evstream.data.cd_processor_iterator`; in n_events mode
``metadata.delta_t = duration // T`` for that chunk) and ``tensor`` the chunk's ``[T, C, H, W]``
tensor; it must return ``T`` labels and a boolean mask of length ``T``, and its labels must not
be views of ``tensor`` (in a worker, the tensor lives in a shared buffer that is reused once the
batch is collated). ``FileMetadata.duration`` is
None: a recording's length is not known before it has been read.

Distributed training (``rank``/``world_size``), ``set_epoch`` and exact resume
(``state_dict``/``load_state_dict``) come from :class:`~evstream.data.stream.StreamDataLoader`;
the recordings' chunk counts (:func:`count_chunks`, or ``lengths=``/``durations=``) give every
rank the same number of batches, and a resumed recording is reopened by seeking
(:meth:`CDProcessorDatasetIterator.skip`).

Transforms are applied with :func:`~evstream.data.transformations.transform_sequence` seeded by the
recording (path and ``start_ts``) and ``epoch_seed(seed, epoch)``, so a random augmentation is
the same for every chunk of a recording.
"""

from __future__ import annotations

import os
import time
from functools import partial

import numpy as np
import torch

from evstream.data._workers import DEFAULT_WORKER_TIMEOUT_S
from evstream.data.cd_processor_iterator import CDProcessorIterator, TensorFileChunks
from evstream.data.chunks import check_mode
from evstream.data.scheduler import FileMetadata
from evstream.data.sequential_dataset_common import (STREAM_PADDING, collate_fn,
                                                     load_labels_stub, padding_item)
from evstream.data.sharding import epoch_seed, resolve_rank
from evstream.data.stream import PADDING_MODES, StreamDataLoader, StreamDataset, stream_output
from evstream.data.transformations import transform_sequence
from evstream.errors import ArgumentError, GeometryError, MissingFileError
from evstream.io import open_reader
from evstream.preprocessing import get_preprocess_dict
from evstream.preprocessing.tensor_file import check_output_size, is_tensor_file, read_tensor_attrs

__all__ = ["CDProcessorDatasetIterator", "CDProcessorDataLoader", "collate_fn", "is_tensor_file",
           "native_size", "count_chunks"]


def native_size(path):
    """``(height, width)`` a file's tensors have without resizing: the sensor size of an event
    file (None if the file does not say), the stored size of a tensor file."""
    path = os.fspath(path)
    if is_tensor_file(path):
        shape = read_tensor_attrs(path).shape
        return int(shape[1]), int(shape[2])
    with open_reader(path) as reader:
        size = reader.get_size()
    if size is None or None in tuple(size):
        return None
    return int(size[0]), int(size[1])


class CDProcessorDatasetIterator:
    """The items of one recording: ``(tensor [T, C, H, W] float32, labels, keep_memory,
    frame_is_labeled, (FileMetadata, start_us, duration_us))``, one per chunk.

    Args mirror the original's: ``path``; ``height_out``, ``width_out`` (tensor size);
    ``load_labels`` (None: no labels, ``T`` empty tensors and an all-False mask); ``mode``
    (``"delta_t"`` or ``"n_events"``), ``n_events``, ``delta_t``, ``num_tbins``;
    ``preprocess_function_name``, ``preprocess_kwargs``; ``start_ts``, ``max_duration`` (µs);
    ``transforms``, ``base_seed``; ``reader_kwargs`` (forwarded to the event reader).

    The file is opened at the first ``next()``. ``stats`` counts chunks, events and the seconds
    spent decoding (or reading rows), tensorizing and loading labels.
    """

    def __init__(self, path, height_out, width_out, load_labels, mode, n_events, delta_t,
                 num_tbins, preprocess_function_name, preprocess_kwargs={}, start_ts=0,
                 max_duration=None, transforms=None, base_seed=None, reader_kwargs=None):
        self.path = os.fspath(path)
        self.height, self.width = int(height_out), int(width_out)
        self.load_labels = load_labels
        self.mode, self.n_events, self.delta_t = mode, int(n_events or 0), int(delta_t or 0)
        self.num_tbins = int(num_tbins)
        self.preprocess_function_name = preprocess_function_name
        self.preprocess_kwargs = dict(preprocess_kwargs)
        self.start_ts = int(start_ts)
        self.max_duration = max_duration
        self.transforms = transforms
        self.base_seed = 0 if base_seed is None else int(base_seed)
        self.reader_kwargs = dict(reader_kwargs or {})
        self.cin = get_preprocess_dict(preprocess_function_name)["cin"]
        self.metadata = FileMetadata(self.path, None, self.delta_t, self.num_tbins,
                                     start_ts=self.start_ts)
        self.stats = {"chunks": 0, "events": 0, "dropped": 0, "decode_s": 0.0,
                      "tensorize_s": 0.0, "labels_s": 0.0}
        self._source = None
        self._first = True
        self._done = False
        self._skip_us = 0            # delta_t mode: chunks skipped by seeking (skip())

    def skip(self, n: int) -> None:
        """Skip the next ``n`` chunks (resuming mid-recording). Before the first chunk in
        ``delta_t`` mode the file is opened ``n·T·delta_t`` µs later (a seek: nothing before is
        read); otherwise the source skips them (:meth:`~evstream.data.chunks.ChunkSource.skip`:
        a tensor file reads nothing, an event file reads and drops them; no labels, no
        transforms). The chunk after them keeps ``keep_memory`` 1 and the recording's
        ``FileMetadata``."""
        n = int(n)
        if n <= 0 or self._done:
            return
        if self.mode == "delta_t" and self._source is None and self._first:
            self._skip_us = n * self.num_tbins * self.delta_t
        else:
            if self._source is None:
                self._source = self._open()
            self._source.skip(n)
        self._first = False

    def _open(self):
        max_duration = self.max_duration
        if self._skip_us and max_duration is not None:
            max_duration = int(max_duration) - self._skip_us
            if max_duration < 1:
                return _Exhausted()
        common = dict(mode=self.mode, start_ts=self.start_ts + self._skip_us,
                      max_duration=max_duration,
                      delta_t=self.delta_t, n_events=self.n_events, num_tbins=self.num_tbins,
                      preprocess_kwargs=self.preprocess_kwargs, height=self.height,
                      width=self.width)
        if is_tensor_file(self.path):
            return TensorFileChunks(self.path, self.preprocess_function_name, **common)
        return CDProcessorIterator(self.path, self.preprocess_function_name,
                                   reader_kwargs=self.reader_kwargs, **common)

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        if self._source is None:
            self._source = self._open()
        out = stream_output((self.num_tbins, self.cin, self.height, self.width))
        try:
            info = self._source.next_chunk(out.numpy())
        except StopIteration:
            self.close()
            raise
        meta = self.metadata
        if self.mode == "n_events":
            meta = FileMetadata(self.path, None, info.duration // self.num_tbins, self.num_tbins,
                                start_ts=self.start_ts)
        tensor = out
        if self.transforms is not None:
            tensor = transform_sequence(tensor, self.metadata, self.transforms, self.base_seed)
        t0 = time.perf_counter()
        load_labels = self.load_labels if self.load_labels is not None else load_labels_stub
        labels, frame_is_labeled = load_labels(meta, info.start, info.duration, tensor)
        self.stats["labels_s"] += time.perf_counter() - t0
        if len(labels) != self.num_tbins or len(frame_is_labeled) != self.num_tbins:
            raise ArgumentError(f"load_labels returned {len(labels)} labels and a mask of length "
                                f"{len(frame_is_labeled)} for a chunk of {self.num_tbins} bins "
                                f"(start {info.start} µs, duration {info.duration} µs)", self.path)
        keep_memory = 0.0 if self._first else 1.0
        self._first = False
        return (tensor, labels, keep_memory, np.asarray(frame_is_labeled, dtype=bool),
                (meta, info.start, info.duration))

    def close(self) -> None:
        """Close the file (idempotent); the statistics of the source are added to ``stats``."""
        self._done = True
        source, self._source = self._source, None
        if source is not None:
            for key, value in source.stats.items():
                self.stats[key] = self.stats.get(key, 0) + value
            source.close()


class _Exhausted:
    """A source with no chunk left (a skip past ``max_duration``)."""

    stats: dict = {}

    def next_chunk(self, out):
        raise StopIteration

    def skip(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def count_chunks(path, mode, delta_t, n_events, num_tbins, preprocess_function_name,
                 start_ts=0, max_duration=None, duration=None, reader_kwargs=None) -> int:
    """How many chunks :class:`CDProcessorDatasetIterator` yields for ``path``, without
    building tensors.

    * tensor files: from the row count (attributes and, in n_events mode, ``last_timestamps``);
    * event files in ``delta_t`` mode: ``floor((last - start_ts) / (T·delta_t)) + 1`` with
      ``last`` the time of the last event (``duration`` when given, else measured: cheap for DAT
      and NPY, a full decode for RAW), capped by ``max_duration``;
    * event files in ``n_events`` mode: the file is decoded once and its slices counted.
    """
    path = os.fspath(path)
    if is_tensor_file(path):
        chunks = TensorFileChunks(path, preprocess_function_name, mode=mode, start_ts=start_ts,
                                  max_duration=max_duration, delta_t=delta_t, n_events=n_events,
                                  num_tbins=num_tbins)
        try:
            return chunks.remaining()
        finally:
            chunks.close()
    start_ts = int(start_ts)
    if mode == "delta_t":
        chunk = int(delta_t) * int(num_tbins)
        if duration is None:
            with open_reader(path, **dict(reader_kwargs or {})) as reader:
                if reader.event_count() == 0:
                    return 0
                reader.seek_time(start_ts)
                if reader.is_done():
                    return 0
                reader.seek_time(np.iinfo(np.int64).max // 4)
                last = int(reader.current_time)
        else:
            last = int(duration)
            if last < start_ts:
                return 0
        count = (last - start_ts) // chunk + 1
        if max_duration is not None:
            count = min(count, -(-int(max_duration) // chunk))
        return int(count)
    from evstream.io import EventsIterator
    iterator = EventsIterator(path, start_ts=start_ts, mode=mode,
                              n_events=int(n_events) * int(num_tbins), max_duration=max_duration,
                              **dict(reader_kwargs or {}))
    count = 0
    with iterator.reader:
        for events in iterator:
            if len(events) == 0:
                break
            count += 1
    return count


class _SeededStreamer:
    """``streamer(path)`` of :class:`CDProcessorDataLoader`: ``make(path, base_seed=...)`` with
    the transforms' seed ``epoch_seed(seed, epoch)``, set by :meth:`set_epoch` (the
    :class:`~evstream.data.stream.StreamDataset` protocol)."""

    def __init__(self, make):
        self.make = make
        self.base_seed = 0

    def set_epoch(self, seed: int, epoch: int) -> None:
        self.base_seed = epoch_seed(seed, epoch)

    def __call__(self, path):
        return self.make(path, base_seed=self.base_seed)


class CDProcessorDataLoader(StreamDataLoader):
    """Streams recordings as batches of ``[T, B, C, H, W]`` tensors built on the fly (see the
    module docstring).

    Args:
        files: recordings (RAW, DAT, NPY, HDF5 events) and/or HDF5 tensor files.
        mode: ``"delta_t"`` (bins of ``delta_t`` µs) or ``"n_events"`` (bins of ``n_events`` events).
        delta_t, n_events: bin size in the chosen mode (the other one is ignored).
        max_duration: read at most this many µs of each recording (None: all).
        preprocess_function_name: registry name.
        num_tbins: T.
        batch_size: B (any value >= 1; slots without a recording are padding).
        num_workers: worker processes (0: main process; at most B are used).
        height, width: tensor size; default: the first file's size (sensor size of a recording,
            stored size of a tensor file). Other files are resized: power-of-two reductions in the
            event domain (exact), other sizes by interpolation (see
            :mod:`evstream.data.cd_processor_iterator`).
        preprocess_kwargs: override the registry's default kwargs.
        load_labels: label loader (None: no labels).
        padding_mode: ``"zeros"`` or ``"data"``.
        transforms: augmentation applied per recording.
        start_ts: first time read in every recording (µs).
        seed: seed of the shuffle and of the transforms (keyword-only).
        shuffle: permute the recordings before dealing them to slots (keyword-only).
        reader_kwargs: forwarded to the event readers (keyword-only).
        rank, world_size: this process's share of a distributed job (keyword-only; default
            from ``torch.distributed`` when initialised, else 0 of 1): the recordings are split
            over the ranks, longest first (by chunk count), and every rank yields ``len(loader)``
            batches (fill items once its recordings end).
        lengths: chunks per recording (keyword-only). Needed with several ranks; measured with
            :func:`count_chunks` when not given (cheap for tensor files, DAT and NPY; RAW files
            are decoded once, so pass ``lengths`` or ``durations`` for large RAW datasets).
        durations: time of the last event of each recording, µs (keyword-only; delta_t mode),
            to compute ``lengths`` without reading the files.
        prefetch_factor, ring_depth, multiprocessing_context, timeout, persistent_workers: see
            :class:`~evstream.data.stream.StreamDataLoader` (keyword-only).
    """

    def __init__(self, files, mode, delta_t, n_events, max_duration, preprocess_function_name,
                 num_tbins, batch_size, num_workers=2, height=None, width=None,
                 preprocess_kwargs={}, load_labels=None, padding_mode="zeros", transforms=None,
                 *, start_ts=0, seed=0, shuffle=False, reader_kwargs=None, prefetch_factor=2,
                 ring_depth=3, multiprocessing_context=None, rank=None, world_size=None,
                 lengths=None, durations=None, epoch=0, timeout=DEFAULT_WORKER_TIMEOUT_S,
                 persistent_workers=False):
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        files = [os.fspath(f) for f in files]
        if not files:
            raise ArgumentError("CDProcessorDataLoader needs at least one file")
        for f in files:
            if not os.path.isfile(f):
                raise MissingFileError("no such recording", f)
        check_mode(mode, delta_t, n_events, None)
        if int(num_tbins) < 1:
            raise ArgumentError(f"num_tbins must be >= 1, got {num_tbins!r}")
        if max_duration is not None and int(max_duration) < 1:
            raise ArgumentError(f"max_duration must be >= 1 µs or None, got {max_duration!r}")
        if padding_mode not in PADDING_MODES:
            raise ArgumentError(f"padding_mode must be one of {PADDING_MODES}, "
                                f"got {padding_mode!r}")
        entry = get_preprocess_dict(preprocess_function_name)     # unknown name -> error
        if height is None or width is None:
            size = native_size(files[0])
            if size is None:
                raise GeometryError("the file gives no sensor size: pass height and width",
                                    files[0])
            height = size[0] if height is None else height
            width = size[1] if width is None else width
        check_output_size((height, width))
        self.files = files
        self.mode = mode
        self.delta_t = int(delta_t) if mode == "delta_t" else 0
        self.n_events = int(n_events) if mode == "n_events" else 0
        self.max_duration = max_duration
        self.preprocess_function_name = preprocess_function_name
        self.preprocess_dict = entry
        self.num_tbins = int(num_tbins)
        self.height, self.width = int(height), int(width)
        self.cin = entry["cin"]
        self.padding_mode = padding_mode
        self.load_labels = load_labels
        make = partial(CDProcessorDatasetIterator, height_out=self.height, width_out=self.width,
                       load_labels=load_labels, mode=mode, n_events=self.n_events,
                       delta_t=self.delta_t, num_tbins=self.num_tbins,
                       preprocess_function_name=preprocess_function_name,
                       preprocess_kwargs=dict(preprocess_kwargs), start_ts=int(start_ts),
                       max_duration=max_duration, transforms=transforms,
                       reader_kwargs=reader_kwargs)
        fill_value = padding_item((self.num_tbins, self.cin, self.height, self.width),
                                  torch.float32, STREAM_PADDING)
        rank, world_size = resolve_rank(rank, world_size)
        if durations is not None and len(durations) != len(files):
            raise ArgumentError(f"{len(durations)} durations for {len(files)} files")
        if lengths is None and world_size > 1:
            lengths = [count_chunks(f, mode, self.delta_t, self.n_events, self.num_tbins,
                                    preprocess_function_name, start_ts, max_duration,
                                    None if durations is None else durations[i], reader_kwargs)
                       for i, f in enumerate(files)]
        dataset = StreamDataset(files, _SeededStreamer(make), batch_size, padding_mode,
                                fill_value, seed, shuffle=shuffle, epoch=epoch, rank=rank,
                                world_size=world_size, lengths=lengths)
        super().__init__(dataset, num_workers, collate_fn, prefetch_factor=prefetch_factor,
                         ring_depth=ring_depth, multiprocessing_context=multiprocessing_context,
                         timeout=timeout, warm_up=True, persistent_workers=persistent_workers,
                         batch_output=((self.num_tbins, self.cin, self.height, self.width),
                                       torch.float32))

    # ------------------------------------------------------------------ pictures
    def _preprocess_entry(self) -> dict:
        return self.preprocess_dict

    def _frame_size(self) -> tuple[int, int]:
        return self.height, self.width

    def _bin_us(self) -> int | None:
        return self.delta_t or None
