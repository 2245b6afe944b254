"""Sequential loading of recordings for recurrent networks (``metavision_ml.data.sequential_dataset``).

:class:`SequentialDataset` is a torch map-style dataset whose item ``n`` is one chunk of
``num_tbins`` time bins of one recording, laid out by a :class:`~evstream.data.scheduler.Scheduler`
so that consecutive batches continue the same recordings in the same batch slots.
:class:`SequentialDataLoader` wraps it in a torch ``DataLoader`` and yields batch dicts:

| key | content |
|---|---|
| ``inputs`` | float32 ``[T, N, C, H, W]`` |
| ``labels`` | ``T`` lists of ``N`` labels (what ``load_labels`` returns per bin; NaN for padding) |
| ``mask_keep_memory`` | float32 ``[N, 1, 1, 1]``: 0 at the first chunk of a recording, else 1 |
| ``frame_is_labeled`` | bool ``[T, N]`` |
| ``video_infos`` | ``N`` tuples ``(FileMetadata, start_us, duration_us)`` |

Inputs are read from HDF5 tensor files (``.h5``/``.hdf5``) or computed on the fly from ``.dat``
and ``.raw`` recordings with the preprocessing registry; the three can be mixed in one list.

Each process (the main one, or each DataLoader worker) keeps its files open in an LRU
(``max_open_files``); a DAT/RAW reader continues from its cursor when the next chunk of a file
follows the previous one, and seeks otherwise.

Labels follow one convention: a chunk ``[start, start + duration)`` of events owns the labels
with ``start < t <= start + duration`` (see :mod:`evstream.data.box_processing`).
"""

from __future__ import annotations

import logging
import math
import os
from functools import partial

import cv2
import numpy as np
import torch

from evstream.data._sources import (SourceCache, file_kind, read_tensor_file_info,
                                    tensor_output_dtype)
from evstream.data.scheduler import Scheduler
from evstream.data.transformations import transform_sequence
from evstream.errors import ArgumentError, GeometryError
from evstream.preprocessing import get_output_dtype, get_preprocess_dict

logger = logging.getLogger(__name__)

__all__ = ["load_labels_stub", "collate_fn", "SequentialDataset", "SequentialDataLoader",
           "ArrayDimError"]


class ArrayDimError(GeometryError, AssertionError):
    """``array_dim`` does not fit a file: the sensor is not an integer (power-of-two for event
    files) multiple of ``H x W`` with the same ratio on both axes. Also an ``AssertionError``,
    which the original raised."""


def load_labels_stub(metadata, start_time, duration, tensor):
    """This is a stub implementation of a function to load label data.

    This function doesn't actually load anything and should be passed to the SequentialDataset for
        self-supervised training when no actual labelling is required.

    Args:
        metadata (FileMetadata): This class contains information about the sequence that is being read.
            Ideally the path for the labels should be deducible from `metadata.path`.
        start_time (int): Time in us in the file at which we start reading.
        duration (int): Duration in us of the data we need to read from said file.
        tensor (torch.tensor): Torch tensor of the feature for which labels are loaded.
            It can be used for instance to filter out the labels in area where there is no events.
    Returns:
        labels should be indexable by time bin (to differentiate the labels of each time bin). It could
            therefore be a list of length *num_tbins*.
        (boolean nd array): This boolean mask array of *length* num_tbins indicates
            whether the frame contains a label. It is used to differentiate between time_bins that actually
            contain an empty label (for instance no bounding boxes) from time bins that weren't labeled due
            to cost constraints. The latter timebins shouldn't contribute to supervised losses used during
            training.
    """
    num = len(range(0, duration, metadata.delta_t))
    return [torch.empty(0)] * num, np.zeros(num, dtype=bool)


def _downsample_clip(frames, array):
    """Writes ``frames`` ``[T, C, h, w]`` into ``array`` ``[T, C, H, W]``: copied when the sizes
    match, else each plane resized with area interpolation (OpenCV ``INTER_AREA``)."""
    if len(frames) != len(array):
        raise ArgumentError(f"{len(frames)} frames for {len(array)} time bins")
    height, width = array.shape[-2:]
    if frames.shape[-2:] == (height, width):
        array[...] = frames
        return array
    work = frames if frames.dtype in (np.float32, np.float64) else frames.astype(np.float32)
    for t in range(frames.shape[0]):
        for c in range(frames.shape[1]):
            array[t, c] = cv2.resize(np.ascontiguousarray(work[t, c]), (width, height),
                                     interpolation=cv2.INTER_AREA)
    return array


def _padding_item(array_dim, dtype, meta):
    num_tbins = array_dim[0]
    return (torch.zeros(tuple(array_dim), dtype=_torch_dtype(dtype)), [float("nan")] * num_tbins,
            1.0, np.zeros(num_tbins, dtype=bool), (meta, 0, 0))


def _same_value(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except (TypeError, ValueError):
        return False


def _torch_dtype(dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class SequentialDataset(torch.utils.data.Dataset):
    """Chunks of recordings, scheduled for sequential (recurrent) training.

    Args:
        files: paths of ``.h5``/``.hdf5`` tensor files, ``.dat`` or ``.raw`` recordings (mixed
            lists are fine).
        delta_t: duration of one time bin (µs). Tensor files must have been written with it.
        preprocess_function_name: registry name (``"histo"``, ``"event_cube"``, ...): computes
            the tensors of event recordings and gives the visualisation.
        array_dim: ``[T, C, H, W]`` of one item. The sensor of every file must be ``H x W``
            times ``2**k`` (event files; any integer ratio for tensor files, which are resized).
        load_labels: ``fn(metadata, start_time, duration, tensor) -> (labels, frame_is_labeled)``.
        durations: the files' durations (µs), or ``[]`` to measure them.
        batch_size: number of recordings played side by side (reduced, with a warning, when
            there are fewer files).
        preprocess_kwargs: overrides of the registry's kwargs (event files only).
        padding: play until the longest slot ends (padding items fill finished slots); without
            it the epoch ends with the shortest slot (a warning names what is skipped).
        transforms: augmentation applied per chunk, see :mod:`evstream.data.transformations`.
        balanced: assign files longest-first to the least-loaded slot (less padding/skipping)
            instead of round-robin in list order.
        max_open_files: files each process keeps open (default: ``max(8, 2 * batch_size)``).
    """

    def __init__(self, files, delta_t, preprocess_function_name, array_dim,
                 load_labels=load_labels_stub, durations=[], batch_size=8, preprocess_kwargs={},
                 padding=False, transforms=None, *, balanced=False, max_open_files=None):
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        files = [os.fspath(f) for f in files]
        array_dim = [int(a) for a in array_dim]
        if len(array_dim) != 4 or min(array_dim) < 1:
            raise ArgumentError(f"array_dim must be [num_tbins, channels, height, width] of "
                                f"positive ints, got {array_dim}")
        self.delta_t = int(delta_t)
        if self.delta_t < 1:
            raise ArgumentError(f"delta_t must be >= 1 µs, got {delta_t}")
        self.array_dim = array_dim
        self.num_tbins = array_dim[0]
        self.total_tbins_delta_t = self.delta_t * self.num_tbins
        self.load_labels = load_labels
        self.padding = padding
        self.transforms = transforms
        for f in files:
            if file_kind(f) not in ("dat", "raw", "h5"):
                raise ArgumentError("can't load this file: SequentialDataset reads .h5/.hdf5 tensor "
                                    "files and .dat/.raw recordings", f)
        self.scheduler = Scheduler.create_schedule(
            files, durations, self.delta_t, self.num_tbins, batch_size,
            max_consecutive_batch=None, shuffle=False, padding=padding, balanced=balanced)
        self.batch_size = self.scheduler.batch_size

        self.preprocess_function_name = preprocess_function_name
        self.preprocess_dict = get_preprocess_dict(preprocess_function_name)
        kwargs = dict(self.preprocess_dict["kwargs"])
        kwargs.update(preprocess_kwargs)
        self.preprocess_kwargs = kwargs
        self._kernel_kwargs = {k: v for k, v in kwargs.items() if k != "preprocess_dtype"}
        self._user_kwargs = dict(preprocess_kwargs)
        cin = self.preprocess_dict["cin"]
        if cin != array_dim[1]:
            if any(file_kind(f) != "h5" for f in files):
                raise ArgumentError(f"array_dim has {array_dim[1]} channels but "
                                    f"{preprocess_function_name!r} makes {cin}")
            logger.warning("array_dim has %d channels but %r makes %d (tensor files are used as "
                           "stored)", array_dim[1], preprocess_function_name, cin)

        # per-file geometry and tensor-file checks
        self._downsampling = {}      # path -> k (event files)
        self._tensor_info = {}       # path -> TensorFileAttrs
        self._original_sizes = {}
        for meta in self.scheduler.files:
            path = meta.path
            if path in self._original_sizes:
                continue
            self._check_file(meta)
        first = self.scheduler.files[0] if self.scheduler.files else None
        if first is not None:
            self.height_orig, self.width_orig = self._original_sizes[first.path]
            self.downsampling_factor = int(math.log2(self.width_orig // array_dim[-1]))
        else:
            self.height_orig = self.width_orig = None
            self.downsampling_factor = 0

        # dtype of the items: the first tensor file's (as the original), else the kernel's
        tensor_files = [p for p in self._tensor_info]
        if tensor_files:
            self.dtype = tensor_output_dtype(self._tensor_info[tensor_files[0]])
        else:
            self.dtype = get_output_dtype(preprocess_function_name, self.downsampling_factor, kwargs)
        self.events_to_tensor = partial(self.preprocess_dict["events_to_tensor"],
                                        total_tbins_delta_t=self.total_tbins_delta_t,
                                        downsampling_factor=self.downsampling_factor, reset=False,
                                        **self._kernel_kwargs)
        self._max_open_files = max_open_files or max(8, 2 * self.batch_size)
        self._sources = SourceCache(self._max_open_files)

    # ---------------------------------------------------------------- checks
    def _check_file(self, meta) -> None:
        path = meta.path
        height, width = self.array_dim[-2:]
        h0, w0 = meta.get_original_size()
        self._original_sizes[path] = (h0, w0)
        ratio_ok = h0 % height == 0 and w0 % width == 0 and h0 // height == w0 // width
        if file_kind(path) == "h5":
            info = read_tensor_file_info(path)
            self._tensor_info[path] = info
            stored_c, stored_h, stored_w = info.shape
            if not ratio_ok and (stored_h, stored_w) != (height, width):
                raise ArrayDimError(f"wrong aspect ratio in array_dim: sensor {w0}x{h0} and "
                                    f"stored {stored_w}x{stored_h} do not reduce to {width}x{height}",
                                    path)
            if info.mode != "delta_t":
                raise ArgumentError(f"tensor file in {info.mode!r} mode: SequentialDataset plays "
                                    f"fixed delta_t bins only", path)
            if info.delta_t != self.delta_t:
                raise ArgumentError(f"tensor file written with delta_t {info.delta_t} us, loader "
                                    f"delta_t is {self.delta_t} us", path)
            if stored_c != self.array_dim[1]:
                raise ArgumentError(f"tensor file has {stored_c} channels, array_dim asks for "
                                    f"{self.array_dim[1]}", path)
            if info.name and info.name != self.preprocess_function_name:
                logger.warning("%s: tensor file made with %r, loader preprocessing is %r (the "
                               "stored tensors are used as they are)", path, info.name,
                               self.preprocess_function_name)
            differ = {k: (info.kwargs[k], v) for k, v in self._user_kwargs.items()
                      if k in info.kwargs and not _same_value(info.kwargs[k], v)}
            if differ:
                logger.warning("%s: tensor file made with %s; the loader's preprocess_kwargs "
                               "apply to event recordings only", path,
                               ", ".join(f"{k}={a!r} (loader: {b!r})" for k, (a, b) in differ.items()))
            return
        ratio = w0 // width if ratio_ok else 0
        if not ratio_ok or ratio & (ratio - 1):
            raise ArrayDimError(f"wrong aspect ratio in array_dim: sensor {w0}x{h0} is not "
                                f"{width}x{height} times a power of two", path)
        self._downsampling[path] = int(math.log2(ratio))

    # ---------------------------------------------------------------- API of the original
    def get_size(self):
        """``[H, W]`` of the items."""
        return self.array_dim[-2:]

    def get_size_original(self):
        """``(H0, W0)`` of the first file's sensor."""
        return self.height_orig, self.width_orig

    def get_unique_files(self):
        return self.scheduler.get_unique_files()

    def get_batch_metadata(self, batch_idx):
        """``[(FileMetadata, start, duration)]`` of the items of batch ``batch_idx``."""
        return [self.scheduler[i] for i in range(batch_idx * self.batch_size,
                                                 (batch_idx + 1) * self.batch_size)]

    def shuffle(self, seed=None):
        """Shuffles the order of the files (slots change; chunks of a file stay in order)."""
        self.scheduler.shuffle(seed=seed)

    def reschedule(self, max_consecutive_batch, shuffle=True, seed=None):
        """Plays every file as chunks of at most ``max_consecutive_batch`` items (each one
        resets the memory) — more variety per batch for the price of shorter sequences."""
        self.scheduler = self.scheduler.reschedule(max_consecutive_batch, self.num_tbins,
                                                   self.delta_t, shuffle=shuffle, seed=seed)
        self.batch_size = self.scheduler.batch_size

    def __len__(self):
        """Number of items (batches x batch_size)."""
        return len(self.scheduler)

    def close(self):
        """Closes the files this process keeps open."""
        self._sources.close()

    @property
    def source_stats(self):
        """Counters of this process's file cache: opens, sequential reads, seeks."""
        return dict(self._sources.stats)

    # ---------------------------------------------------------------- loading
    def _load_sequences(self, meta, start, duration, batch=None, slot=None):
        """The ``[T, C, H, W]`` array of a chunk; written into ``batch[:, slot]`` (a
        ``[T, N, C, H, W]`` array) when given, else into a new array, which is returned."""
        if start < meta.start_ts or duration % self.num_tbins:
            raise ArgumentError(f"bad chunk: start {start} before {meta.start_ts} or duration "
                                f"{duration} not a multiple of {self.num_tbins}", meta.path)
        path = meta.path
        info = self._tensor_info.get(path)
        if info is not None:
            dt = info.delta_t
            row0, row1 = start // dt, (start + duration) // dt
            direct = (tuple(info.shape[1:]) == tuple(self.array_dim[-2:])
                      and np.dtype(info.dtype) == self.dtype and not info.store_as_uint8)
            if direct:              # rows straight from the file into their place
                if batch is None:
                    out = np.zeros(self.array_dim, self.dtype)
                    self._sources.read_rows(path, row0, row1, out)
                    return out
                n = self._sources.read_rows(path, row0, row1, batch, slot)
                if n < self.num_tbins:                      # past the end of the file
                    batch[n:, slot] = 0
                return None
            frames = np.zeros((row1 - row0,) + tuple(info.shape), dtype=info.dtype)
            self._sources.read_rows(path, row0, row1, frames)
            if info.store_as_uint8:
                frames = frames.astype(np.float32) / 255
            array = _downsample_clip(frames, np.zeros(self.array_dim, self.dtype))
        else:
            k = self._downsampling[path]
            events = self._sources.read_events(path, start, duration)
            out_dtype = get_output_dtype(self.preprocess_function_name, k, self.preprocess_kwargs)
            array = np.zeros(self.array_dim, dtype=out_dtype)
            if len(events):
                events["t"] -= start
                self.preprocess_dict["events_to_tensor"](
                    events, array, duration, downsampling_factor=k, reset=False,
                    **self._kernel_kwargs)
        if batch is None:
            return array if array.dtype == self.dtype else array.astype(self.dtype)
        batch[:, slot] = array
        return None

    def _finish_item(self, meta, start, duration, seq):
        keep_memory = float(start > meta.start_ts)
        seq = transform_sequence(seq, meta, self.transforms, base_seed=self.scheduler.base_seed)
        labels, frame_is_labeled = self.load_labels(meta, start, duration, seq)
        return seq, labels, keep_memory, frame_is_labeled, (meta, start, duration)

    def __getitem__(self, n):
        meta, start, duration = self.scheduler[n]
        if meta.is_padding():
            return _padding_item(self.array_dim, self.dtype, meta)
        seq = torch.from_numpy(self._load_sequences(meta, start, duration))
        return self._finish_item(meta, start, duration, seq)

    def __getitems__(self, indices):
        """The items of one batch, loaded straight into one ``[T, N, C, H, W]`` tensor (in shared
        memory inside a DataLoader worker) that :func:`collate_fn` passes on without copying.
        Each item's tensor is a view of its slot; every slot is written in full (zeros for
        padding and for rows past the end of a file)."""
        indices = list(indices)
        shape = (self.num_tbins, len(indices)) + tuple(self.array_dim[1:])
        batch = _new_batch_tensor(shape, _torch_dtype(self.dtype))
        batch_np = batch.numpy()
        items = _Items()
        for slot, n in enumerate(indices):
            meta, start, duration = self.scheduler[n]
            if meta.is_padding():
                _, labels, keep, mask, info = _padding_item(self.array_dim, self.dtype, meta)
                batch_np[:, slot] = 0
                items.append((batch[:, slot], labels, keep, mask, info))
                continue
            self._load_sequences(meta, start, duration, batch_np, slot)
            items.append(self._finish_item(meta, start, duration, batch[:, slot]))
        items.inputs = batch
        return items

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_sources"] = SourceCache(self._max_open_files)   # handles stay in their process
        return state


class _Items(list):
    """The items of a batch, with their inputs already stacked in ``inputs``."""

    inputs = None


def _new_batch_tensor(shape, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised batch tensor (every slot is then written in full). Inside a DataLoader
    worker it is allocated in shared memory, so sending it to the main process copies nothing
    (as torch's default_collate does)."""
    if torch.utils.data.get_worker_info() is not None:
        try:
            numel = int(np.prod(shape))
            storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel)
            return torch.empty(0, dtype=dtype).new(storage).view(shape)
        except (AttributeError, RuntimeError):      # private API gone: plain memory
            pass
    return torch.empty(shape, dtype=dtype)


def collate_fn(data_list):
    """Batches ``N`` items: ``inputs`` ``[T, N, C, H, W]``, ``labels`` ``T`` lists of ``N``,
    ``mask_keep_memory`` float32 ``[N, 1, 1, 1]``, ``frame_is_labeled`` bool ``[T, N]``,
    ``video_infos`` ``N`` tuples ``(FileMetadata, start_us, duration_us)``.

    Items from :meth:`SequentialDataset.__getitems__` arrive already stacked and are not copied.
    """
    tensors, labels, keep_memory, frame_is_labeled, infos = zip(*data_list)
    inputs = getattr(data_list, "inputs", None)
    if inputs is None or inputs.shape[1] != len(tensors):
        inputs = torch.stack(tensors, dim=1)
    num_tbins = inputs.shape[0]
    batch_labels = [[item[t] for item in labels] for t in range(num_tbins)]
    mask = torch.tensor(keep_memory, dtype=torch.float32).view(-1, 1, 1, 1)
    masks = np.stack([np.asarray(m, dtype=bool) for m in frame_is_labeled], axis=1)
    return {"inputs": inputs, "labels": batch_labels, "mask_keep_memory": mask,
            "frame_is_labeled": torch.from_numpy(masks), "video_infos": tuple(infos)}


class SequentialDataLoader:
    """Batches of :class:`SequentialDataset` items, one batch per step of the schedule.

    Args: those of :class:`SequentialDataset`, plus ``num_workers`` (worker processes; each has
    its own open files) and ``shuffle`` (random order of *items*: breaks the continuity of the
    sequences, only for models without memory).

    Iterating yields batch dicts (see the module docstring) with ``inputs`` as float32 on
    :attr:`device`. One iteration is active at a time (``iter()`` returns the loader itself).
    """

    def __init__(self, files, delta_t, preprocess_function_name, array_dim,
                 load_labels=load_labels_stub, durations=[], batch_size=8, num_workers=2,
                 preprocess_kwargs={}, shuffle=False, padding=False, transforms=None, *,
                 balanced=False, max_open_files=None):
        self.num_workers = int(num_workers)
        self.shuffle = shuffle
        self.device = torch.device("cpu")
        self.max_consecutive_batch = None
        self.dataset = SequentialDataset(files, delta_t, preprocess_function_name, array_dim,
                                         load_labels=load_labels, durations=durations,
                                         batch_size=batch_size, preprocess_kwargs=preprocess_kwargs,
                                         padding=padding, transforms=transforms, balanced=balanced,
                                         max_open_files=max_open_files)
        self.batch_size = self.dataset.batch_size
        self.step = 0
        self._iterator = None

    def __len__(self):
        """Batches per epoch."""
        return len(self.dataset) // self.dataset.batch_size if self.dataset.batch_size else 0

    def __iter__(self):
        self.batch_size = self.dataset.batch_size
        if self.num_workers > 0:
            self.dataset.close()      # workers open their own files
        self._loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=max(1, self.batch_size), num_workers=self.num_workers,
            shuffle=self.shuffle, collate_fn=collate_fn, pin_memory=False)
        self._iterator = iter(self._loader)
        self.step = 0
        return self

    def __next__(self):
        if self._iterator is None:
            iter(self)
        if self.step >= len(self):
            self._iterator = None
            raise StopIteration
        batch = next(self._iterator)
        batch["inputs"] = batch["inputs"].to(self.device).float()
        batch["mask_keep_memory"] = batch["mask_keep_memory"].to(self.device)
        self.step += 1
        return batch

    def cuda(self, device=torch.device("cuda")):
        if not torch.cuda.is_available():
            raise ArgumentError("CUDA is not available")
        self.device = device
        return self

    def to(self, device):
        if not isinstance(device, torch.device):
            raise ArgumentError(f"to() needs a torch.device, got {device!r}")
        self.device = device
        return self

    def cpu(self):
        self.device = torch.device("cpu")
        return self

    def get_vis_func(self):
        """The registry's visualisation of the preprocessing: ``[C, H, W]`` -> RGB uint8."""
        return self.dataset.preprocess_dict["viz"]

    def show(self, viz_labels=None):
        """Yields one RGB uint8 grid per time bin of every batch (a new array each time).

        The grid has ``ceil(sqrt(N))`` columns; each cell is an item drawn with
        :meth:`get_vis_func`, its labels drawn by ``viz_labels(frame, labels)`` when given,
        the file name at the bottom, and a red 10x10 square at the top-left on the first two
        bins of a new sequence. Padding items are drawn empty and named ``PADDING``.
        """
        from evstream.data.sequential_dataset_common import show_dataloader
        height, width = self.dataset.get_size()
        return show_dataloader(self, height, width, self.get_vis_func(), viz_labels)

    def save_video(self, path=None, viz_labels=None, fps=None, png_dir=None, max_frames=None,
                   fourcc="mp4v"):
        """Writes the :meth:`show` stream to an mp4 file and/or PNG frames (for machines without
        a display); returns the number of frames written.

        Args:
            path: output video (``.mp4``; None to write only PNGs).
            viz_labels: as in :meth:`show`.
            fps: frames per second (default: real time, ``1e6 / delta_t``).
            png_dir: also write ``frame_000000.png``, ... there.
            max_frames: stop after this many frames.
            fourcc: OpenCV codec code for the video.
        """
        from evstream.data.sequential_dataset_common import write_frames
        if fps is None:
            fps = 1e6 / self.dataset.delta_t
        return write_frames(self.show(viz_labels), path, fps=fps, png_dir=png_dir,
                            max_frames=max_frames, fourcc=fourcc)
