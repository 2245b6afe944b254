"""Sequential loading of recordings for recurrent networks (``metavision_ml.data.sequential_dataset``).

:class:`SequentialDataset` is a torch map-style dataset whose item ``n`` is one chunk of
``num_tbins`` time bins of one recording, laid out by a :class:`~evstream.data.scheduler.Scheduler`
so that consecutive batches continue the same recordings in the same batch slots.
:class:`SequentialDataLoader` wraps it in a torch ``DataLoader`` and yields the batch dict of
:mod:`evstream.data.sequential_dataset_common` (``inputs`` float32 ``[T, N, C, H, W]``, ``labels``
``T x N``, ``mask_keep_memory`` ``[N, 1, 1, 1]``, ``frame_is_labeled`` bool ``[T, N]``,
``video_infos``); padding items have NaN labels and ``keep_memory`` 1, as in the original.

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

import numpy as np
import torch

from evstream.data._sources import SourceCache, file_kind
from evstream.data._loader import LoaderBase, check_state
from evstream.data.scheduler import (FileMetadata, Scheduler, _get_durations, _rounding,
                                     quiet_logs)
from evstream.data.sequential_crew import SequentialCrew
from evstream.data.sequential_dataset_common import (SEQUENTIAL_PADDING, StackedItems, collate_fn,
                                                     load_labels_stub, padding_item)
from evstream.data.sharding import (assign_to_ranks, check_seed, epoch_seed, permutation,
                                    resolve_rank)
from evstream.data.transformations import transform_sequence
from evstream.data._workers import (DEFAULT_WORKER_TIMEOUT_S, Watchdog, check_timeout,
                                    is_timeout, waiting_worker)
from evstream.errors import (ArgumentError, ArrayDimError, MissingFileError,
                             WorkerTimeoutError)
from evstream.preprocessing import get_output_dtype, get_preprocess_dict
from evstream.preprocessing.tensor_file import read_tensor_attrs, tensor_output_dtype
from evstream.utils.shm import shared_empty

logger = logging.getLogger(__name__)

__all__ = ["load_labels_stub", "collate_fn", "SequentialDataset", "SequentialDataLoader",
           "ArrayDimError"]


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
            times ``2**k`` (event files; any integer ratio for tensor files, whose stored rows
            are resized with :func:`~evstream.preprocessing.tensor_file.resize_rows`, float32).
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
        rank, world_size: this process's share of a distributed job (default: from
            ``torch.distributed`` when initialised, else 0 of 1). The recordings are split over
            the ranks with :func:`~evstream.data.sharding.assign_to_ranks` (longest first, by
            duration); every rank has the same batch size and the same number of batches
            (padding items after a rank's own schedule), computed locally from the same inputs.
        seed, epoch: seed of the shuffles, the random start offsets and the transforms
            (:meth:`set_epoch` changes the epoch).
        shuffle_files: permute, per ``(seed, epoch)``, the order in which the rank's recordings
            are dealt to the batch slots (chunks of a recording stay in order).
        random_start: start every recording at a random whole number of bins in
            ``[0, num_tbins)`` drawn per ``(seed, epoch)`` (the skipped bins are not read).

    With ``rank``/``world_size``/``seed``/``epoch`` at their defaults and no shuffle, the schedule
    is the single-process one.
    """

    def __init__(self, files, delta_t, preprocess_function_name, array_dim,
                 load_labels=load_labels_stub, durations=[], batch_size=8, preprocess_kwargs={},
                 padding=False, transforms=None, *, balanced=False, max_open_files=None,
                 rank=None, world_size=None, seed=0, epoch=0, shuffle_files=False,
                 random_start=False):
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
            if file_kind(f) not in ("dat", "raw", "h5", "h5_events"):
                raise ArgumentError("can't load this file: SequentialDataset reads .h5/.hdf5 tensor "
                                    "files and .dat/.raw/HDF5 event recordings", f)
        self.balanced = bool(balanced)
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.seed = check_seed("seed", seed)
        self.epoch = check_seed("epoch", epoch)
        self.shuffle_files = bool(shuffle_files)
        self.random_start = bool(random_start)
        self.max_consecutive_batch = None
        self._entry_shuffle, self._entry_seed = False, None
        self._requested_batch_size = int(batch_size)
        self._files, self._durations = self._existing_files_and_durations(files, durations)
        self._build()

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

        # dtype of the items: the first tensor file's values (as the original; float32 when
        # uint8-stored or resized), else the kernel's
        tensor_files = [p for p in self._tensor_info]
        if tensor_files:
            self.dtype = tensor_output_dtype(self._tensor_info[tensor_files[0]],
                                             self.array_dim[-2:])
        else:
            self.dtype = get_output_dtype(preprocess_function_name, self.downsampling_factor, kwargs)
        self._max_open_files = max_open_files or max(8, 2 * self.batch_size)
        self._sources = SourceCache(self._max_open_files)

    # ---------------------------------------------------------------- schedule
    def _existing_files_and_durations(self, files, durations):
        """Drops missing files (warning) and measures the durations once (create_schedule's
        rules), so that rebuilding the schedule (set_epoch, reschedule) reads nothing."""
        durations = list(durations) if durations is not None else []
        if durations and len(durations) != len(files):
            raise ArgumentError(f"{len(durations)} durations for {len(files)} files (pass [] to "
                                f"measure them)")
        exists = [os.path.exists(f) for f in files]
        missing = [f for f, e in zip(files, exists) if not e]
        if missing:
            logging.getLogger("evstream.data.scheduler").warning(
                "Scheduler: %d missing file(s) dropped: %s", len(missing),
                ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
            if len(missing) == len(files):
                raise MissingFileError(f"none of the {len(files)} files exists", missing[0])
            keep = [i for i, e in enumerate(exists) if e]
            files = [files[i] for i in keep]
            durations = [durations[i] for i in keep] if durations else []
        if not durations:
            durations = _get_durations(files)
        return files, [int(d) for d in durations]

    def _shards(self) -> list[list[int]]:
        if self.world_size == 1:
            return [list(range(len(self._files)))]
        weights = np.maximum(_rounding(np.asarray(self._durations, np.int64),
                                       self.total_tbins_delta_t), 0) if self._files else []
        return assign_to_ranks(weights, self.world_size, self.seed, self.epoch,
                               self.shuffle_files)

    def _rank_schedule(self, shards, rank, batch_size) -> Scheduler:
        idx = shards[rank]
        if self.shuffle_files:
            idx = [idx[i] for i in permutation(len(idx), self.seed, self.epoch)]
        offsets = None
        if self.random_start:
            rng = np.random.default_rng([self.seed, self.epoch, 1])
            bins = rng.integers(0, self.num_tbins, size=len(self._files))
            offsets = [int(bins[i]) * self.delta_t for i in idx]
        scheduler = Scheduler.create_schedule(
            [self._files[i] for i in idx], [self._durations[i] for i in idx], self.delta_t,
            self.num_tbins, batch_size, max_consecutive_batch=self.max_consecutive_batch,
            shuffle=self._entry_shuffle, padding=self.padding, seed=self._entry_seed,
            balanced=self.balanced, start_offsets=offsets)
        scheduler.base_seed += epoch_seed(self.seed, self.epoch)
        return scheduler

    def _build(self) -> None:
        """This rank's scheduler, the common batch size and the common number of batches."""
        shards = self._shards()
        size = self._requested_batch_size
        if self.world_size == 1:
            self.scheduler = self._rank_schedule(shards, 0, size)
            self.batch_size = self.scheduler.batch_size
            self._num_steps = self.scheduler.num_steps()
            return
        with quiet_logs():
            others = [self._rank_schedule(shards, r, size) for r in range(self.world_size)]
        common = min([s.batch_size for s in others if s.files] or [size])
        if common != size:
            logger.warning("batch_size reduced to %d on every rank: a rank has only %d "
                           "recording(s) (use at least world_size x batch_size recordings)",
                           common, common)
            with quiet_logs():
                others = [self._rank_schedule(shards, r, common) for r in range(self.world_size)]
        self.scheduler = self._rank_schedule(shards, self.rank, common)   # with its warnings
        self.batch_size = common
        self._num_steps = max(s.num_steps() for s in others)

    def num_batches(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return self._num_steps

    def rank_files(self) -> list:
        """Paths this rank reads in the current epoch (list order)."""
        return [self._files[i] for i in self._shards()[self.rank]]

    @property
    def checked_files(self) -> frozenset:
        """Paths of the files whose sensor size (and tensor-file attributes) this dataset has
        checked: its per-file tables, which loading a file's chunks needs."""
        return frozenset(self._original_sizes)

    def set_epoch(self, epoch: int) -> None:
        """Rebuilds the schedule for ``epoch`` (changes only with shuffle_files, random_start,
        transforms and, across ranks, ties of equal durations); cheap, reads no file."""
        epoch = check_seed("epoch", epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self._build()
            self._check_new_files()

    def _check_new_files(self) -> None:
        for meta in self.scheduler.files:
            if meta.path not in self._original_sizes:
                self._check_file(meta)

    def _schedule_item(self, n):
        """``scheduler[n]``, or a padding item past this rank's schedule (up to the common
        number of batches)."""
        n = int(n)
        if n < 0:
            n += len(self)
        if len(self.scheduler) <= n < len(self):
            return FileMetadata(None, None, None, None, padding=True), 0, 0
        return self.scheduler[n]

    # ---------------------------------------------------------------- checks
    def _check_file(self, meta) -> None:
        path = meta.path
        height, width = self.array_dim[-2:]
        h0, w0 = meta.get_original_size()
        self._original_sizes[path] = (h0, w0)
        ratio_ok = h0 % height == 0 and w0 % width == 0 and h0 // height == w0 // width
        if file_kind(path) == "h5":
            info = read_tensor_attrs(path)
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
        return [self._schedule_item(i) for i in range(batch_idx * self.batch_size,
                                                      (batch_idx + 1) * self.batch_size)]

    def shuffle(self, seed=None):
        """Shuffles the order of the files (slots change; chunks of a file stay in order).

        With several ranks the shuffle is applied to every rank's schedule alike (seeded by
        ``seed``); prefer ``shuffle_files=True`` with :meth:`set_epoch`, which survives rebuilds.
        """
        if self.world_size == 1:
            self.scheduler.shuffle(seed=seed)
            self._num_steps = self.scheduler.num_steps()
            return
        self._entry_shuffle = True
        self._entry_seed = seed if seed is not None else (self._entry_seed or 0) + 1
        self._build()
        self._check_new_files()

    def reschedule(self, max_consecutive_batch, shuffle=True, seed=None):
        """Plays every file as chunks of at most ``max_consecutive_batch`` items (each one
        resets the memory) — more variety per batch for the price of shorter sequences."""
        self._requested_batch_size = self.batch_size
        self.max_consecutive_batch = max_consecutive_batch
        self._entry_shuffle, self._entry_seed = bool(shuffle), seed
        self._build()
        self._check_new_files()

    def __len__(self):
        """Number of items (batches x batch_size)."""
        return self._num_steps * self.batch_size

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
            # the values of every loader: uint8-stored / 255, the one resize rule
            rows = self._sources.tensor_file(path).read(row0, row1, tuple(self.array_dim[-2:]))
            array = np.zeros(self.array_dim, self.dtype)
            array[:len(rows)] = rows
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

    def _finish_item(self, meta, start, duration, seq, base_seed):
        keep_memory = float(start > meta.start_ts)
        seq = transform_sequence(seq, meta, self.transforms, base_seed=base_seed)
        labels, frame_is_labeled = self.load_labels(meta, start, duration, seq)
        return seq, labels, keep_memory, frame_is_labeled, (meta, start, duration)

    def _padding_item(self, meta):
        return padding_item(self.array_dim, _torch_dtype(self.dtype), SEQUENTIAL_PADDING, meta)

    def warm_up(self) -> None:
        """Compute item 0 in this process and drop it (see
        :meth:`~evstream.data._loader.LoaderBase._warm_up_before_fork`); a failure is left to
        the workers, which report it with its batch's context."""
        try:
            if len(self):
                self[0]
        except Exception:        # noqa: BLE001 (an optimisation only; the workers report it)
            pass

    def __getitem__(self, n):
        meta, start, duration = self._schedule_item(n)
        if meta.is_padding():
            return self._padding_item(meta)
        seq = torch.from_numpy(self._load_sequences(meta, start, duration))
        return self._finish_item(meta, start, duration, seq, self.scheduler.base_seed)

    def __getitems__(self, indices):
        """The items of one batch (:meth:`load_batch` of their schedule entries)."""
        return self.load_batch([self._schedule_item(n) for n in indices],
                               self.scheduler.base_seed)

    def batch_shape(self, batch_size: int | None = None) -> tuple:
        """``(T, N, C, H, W)`` of a batch of ``batch_size`` items (default: the batch size)."""
        n = self.batch_size if batch_size is None else int(batch_size)
        return (self.num_tbins, n) + tuple(self.array_dim[1:])

    @property
    def batch_dtype(self) -> torch.dtype:
        """The items' torch dtype (:attr:`dtype`)."""
        return _torch_dtype(self.dtype)

    def load_batch(self, entries, base_seed: int, out: torch.Tensor | None = None) -> StackedItems:
        """The items of the schedule ``entries`` ``[(FileMetadata, start_us, duration_us)]``,
        loaded straight into one ``[T, N, C, H, W]`` tensor that :func:`collate_fn` passes on
        without copying: ``out`` when given (:meth:`batch_shape`, :attr:`batch_dtype`), else a
        new one (in shared memory inside a DataLoader worker). Each item's tensor is a view of
        its slot; every slot is written in full (zeros for padding and for rows past the end of
        a file). ``base_seed`` seeds the transforms (the scheduler's ``base_seed``)."""
        entries = list(entries)
        batch = _new_batch_tensor(self.batch_shape(len(entries)), self.batch_dtype) \
            if out is None else out
        batch_np = batch.numpy()
        items = StackedItems()
        for slot, (meta, start, duration) in enumerate(entries):
            if meta.is_padding():
                _, labels, keep, mask, info = self._padding_item(meta)
                batch_np[:, slot] = 0
                items.append((batch[:, slot], labels, keep, mask, info))
                continue
            self._load_sequences(meta, start, duration, batch_np, slot)
            items.append(self._finish_item(meta, start, duration, batch[:, slot], base_seed))
        items.inputs = batch
        return items

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_sources"] = SourceCache(self._max_open_files)   # handles stay in their process
        return state


def _new_batch_tensor(shape, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised batch tensor (every slot is then written in full). Inside a DataLoader
    worker it is allocated in shared memory, so sending it to the main process copies nothing
    (as torch's default_collate does)."""
    if torch.utils.data.get_worker_info() is not None:
        return shared_empty(shape, dtype)
    return torch.empty(shape, dtype=dtype)


class SequentialDataLoader(LoaderBase):
    """Batches of :class:`SequentialDataset` items, one batch per step of the schedule.

    Args: those of :class:`SequentialDataset`, plus ``num_workers`` (worker processes; each has
    its own open files), ``shuffle`` (random order of *items*: breaks the continuity of the
    sequences, only for models without memory) and ``timeout`` (keyword-only, seconds to wait for
    a worker's next batch, default 300, 0 or None: forever; see :mod:`evstream.data._workers`).

    Workers (:mod:`evstream.data.sequential_crew`): each makes its own group of neighbouring
    slots of every batch (whole batches in turn when there are fewer slots than workers) and
    writes them into shared batch arrays that the loader allocates once and hands out as
    ``inputs`` without a copy. ``persistent_workers`` (keyword-only, default False, as torch's)
    keeps them alive from one iteration to the next: a later epoch or validation pass starts
    without new processes. They play each iteration's schedule (``set_epoch``, ``shuffle``,
    ``reschedule``, ``load_state_dict`` reach them); other changes to the dataset after they
    started (``transforms``, ``load_labels``) do not, as with torch's ``persistent_workers``.
    :meth:`close` stops them (so does deleting the loader).

    Errors: an exception raised while a batch is made (in the main process or a worker) stops
    every worker of the iteration before it reaches the caller; a worker silent for ``timeout``
    seconds is a :class:`~evstream.errors.WorkerTimeoutError` naming it and its recordings.

    Iterating yields batch dicts (see the module docstring) with ``inputs`` as float32 on
    :attr:`device`. One iteration is active at a time (``iter()`` returns the loader itself).

    Distributed training and resuming (keyword-only): ``rank``, ``world_size``, ``seed``,
    ``epoch``, ``shuffle_files``, ``random_start`` (see :class:`SequentialDataset`);
    :meth:`set_epoch`; :meth:`state_dict` / :meth:`load_state_dict` (the protocol of torchdata's
    ``StatefulDataLoader``): a loader given the state of a run stopped after ``k`` batches yields
    batches ``k + 1, ...`` of the uninterrupted run on its next ``iter()``, without reading the
    skipped data. The batches depend only on the files, the options, ``seed`` and ``epoch``, not
    on ``num_workers`` (``shuffle=True`` permutes items with a generator seeded by them too).
    """

    def __init__(self, files, delta_t, preprocess_function_name, array_dim,
                 load_labels=load_labels_stub, durations=[], batch_size=8, num_workers=2,
                 preprocess_kwargs={}, shuffle=False, padding=False, transforms=None, *,
                 balanced=False, max_open_files=None, rank=None, world_size=None, seed=0,
                 epoch=0, shuffle_files=False, random_start=False,
                 timeout=DEFAULT_WORKER_TIMEOUT_S, persistent_workers=False):
        self.num_workers = int(num_workers)
        self.timeout = check_timeout(timeout)
        self.persistent_workers = bool(persistent_workers)
        self.shuffle = shuffle
        self.device = torch.device("cpu")
        self.max_consecutive_batch = None
        self.dataset = SequentialDataset(files, delta_t, preprocess_function_name, array_dim,
                                         load_labels=load_labels, durations=durations,
                                         batch_size=batch_size, preprocess_kwargs=preprocess_kwargs,
                                         padding=padding, transforms=transforms, balanced=balanced,
                                         max_open_files=max_open_files, rank=rank,
                                         world_size=world_size, seed=seed, epoch=epoch,
                                         shuffle_files=shuffle_files, random_start=random_start)
        self.batch_size = self.dataset.batch_size
        self.step = 0
        self._iterator = None          # torch's iterator of the current iteration
        self._crew: SequentialCrew | None = None    # its workers; kept for the next one
        self._resume_step = None       # set by load_state_dict, used by the next iter()

    # ---------------------------------------------------------------- distributed / resume
    state_kind = "SequentialDataLoader"

    def _on_epoch(self, changed: bool) -> None:
        if changed:
            self._resume_step = None
            self.step = 0
        self.batch_size = self.dataset.batch_size

    def state_dict(self) -> dict:
        """Where the current (or last) iteration is: plain Python values, picklable."""
        return {**self._state_header(len(self)), "batches_yielded": int(self.step)}

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict`: the next ``iter()`` continues after the batches
        already yielded (a state taken at the end of an epoch starts a new pass, as torchdata's
        ``StatefulDataLoader`` does). The loader must be built with the same files and options;
        ``seed`` and ``epoch`` are taken from the state."""
        check_state(state, self.state_kind, self.rank, self.world_size)
        self.dataset.seed = check_seed("seed", state["seed"])
        self.dataset.epoch = -1                      # force a rebuild with the state's seed
        self.dataset.set_epoch(state["epoch"])
        self.batch_size = self.dataset.batch_size
        check_state(state, self.state_kind, self.rank, self.world_size, self.batch_size,
                    len(self))
        k = int(state["batches_yielded"])
        self.step = k
        self._resume_step = k if k < len(self) else None
        self._end_iteration()

    def _batch_indices(self, first_step: int) -> list:
        size = max(1, self.batch_size)
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.dataset.seed,
                                                                 self.dataset.epoch))
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = range(n)
        return [list(order[s * size:(s + 1) * size]) for s in range(first_step, len(self))]

    # ---------------------------------------------------------------- iteration
    def __len__(self):
        """Batches per epoch."""
        return len(self.dataset) // self.dataset.batch_size if self.dataset.batch_size else 0

    def __iter__(self):
        self.batch_size = self.dataset.batch_size
        first, self._resume_step = self._resume_step or 0, None
        self._end_iteration()                # a previous iteration's, if it was left running
        self._batches = self._batch_indices(first)
        if self.num_workers > 0:
            self._iterator = self._start_crew()
        else:
            self._iterator = iter(torch.utils.data.DataLoader(
                self.dataset, batch_sampler=self._batches, num_workers=0, collate_fn=collate_fn))
        self.step = self._first_step = first
        return self

    def _start_crew(self):
        """torch's iterator of this iteration's batches from the workers: the kept crew when it
        fits (:meth:`SequentialCrew.fits`), else a new one."""
        dataset = self.dataset
        tasks = [([dataset._schedule_item(n) for n in indices], dataset.scheduler.base_seed)
                 for indices in self._batches]
        self._warm_up_before_fork()
        dataset.close()                      # workers open their own files
        crew = self._crew
        if crew is not None:
            iterator = None
            if crew.fits(dataset, self.num_workers, self.timeout):
                try:
                    iterator = crew.start(tasks)
                except Exception:    # noqa: BLE001 (a kept worker died or froze: start anew)
                    iterator = None
            if iterator is not None:
                return iterator
            self._stop_workers()
        self._crew = SequentialCrew(dataset, self.num_workers, self.timeout,
                                    self.persistent_workers)
        return self._crew.start(tasks)

    def _end_iteration(self) -> None:
        """The current iteration is over (or left): its workers are stopped, or kept."""
        self._iterator = None
        if self._crew is not None:
            self._crew.finish()

    def _stop_workers(self) -> None:
        """Stop the workers for good (after an error; the next iteration starts new ones)."""
        crew, self._crew, self._iterator = self._crew, None, None
        if crew is not None:
            crew.stop()

    def close(self) -> None:
        """Stop the workers kept by ``persistent_workers`` and release the shared batch arrays
        (the next iteration starts new ones) and the files open in this process."""
        self._stop_workers()
        self.dataset.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_crew"] = state["_iterator"] = None   # processes do not travel
        return state

    def _timeout_error(self, crew: SequentialCrew, worker=None) -> WorkerTimeoutError:
        worker = waiting_worker(crew.iterator) if worker is None else worker
        pending = crew.pending(worker)
        paths = []
        for _, entries in pending:
            for meta, _, _ in entries:
                if not meta.is_padding() and meta.path not in paths:
                    paths.append(meta.path)
        who = "a worker" if worker is None else f"worker {worker}"
        batches = ", ".join(dict.fromkeys(str(self._first_step + b) for b, _ in pending))
        return WorkerTimeoutError(f"{who} of the SequentialDataLoader sent nothing for "
                                  f"{self.timeout:g} s (stopped or deadlocked?) while making "
                                  f"batch(es) {batches} from {', '.join(paths) or 'padding only'}; "
                                  f"the workers were stopped (timeout= sets the limit)")

    def __next__(self):
        if self._iterator is None:
            iter(self)
        if self.step >= len(self):
            self._end_iteration()
            raise StopIteration
        iterator, crew = self._iterator, self._crew
        dog = Watchdog(iterator if self.num_workers > 0 else None, self.timeout)
        try:
            with dog:
                batch = next(iterator) if crew is None else crew.next_batch()
        except BaseException as exc:
            # stop the workers now, not when the loader is deleted
            timed_out = crew is not None and (is_timeout(exc) or dog.fired)
            error = self._timeout_error(crew, dog.waiting) if timed_out else None
            self._stop_workers()
            if error is not None:
                raise error from None
            raise
        batch = self._to_device(batch)
        batch["inputs"] = batch["inputs"].float()
        self.step += 1
        return batch

    # ---------------------------------------------------------------- pictures
    def _preprocess_entry(self) -> dict:
        return self.dataset.preprocess_dict

    def _frame_size(self) -> tuple[int, int]:
        height, width = self.dataset.get_size()
        return int(height), int(width)

    def _bin_us(self) -> int:
        return self.dataset.delta_t
