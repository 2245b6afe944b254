"""How recordings become a stream of fixed-length chunks played side by side.

A loader plays ``B`` recordings at once, one per *batch slot*. Each slot plays its files back to
back, one chunk of ``total = delta_t * num_tbins`` µs per step; item ``n`` of the schedule is slot
``n % B`` at step ``n // B``. Everything here is metadata: no file is read except to measure
durations and sensor sizes.

* :class:`FileMetadata`: one recording (or one chunk of it) and its timing.
* :func:`get_duration` / :func:`_get_durations`: how long a file plays (µs).
* :func:`_rounding`: durations rounded to whole chunks (up when within 1000 µs of the next one).
* :class:`Scheduler`: the slot assignment and the item -> (file, start, duration) map.

Compared with ``metavision_ml.data.scheduler`` (same names and rules otherwise):

* DAT/NPY durations are the last event's timestamp, not the first-to-last span (a recording
  whose first event is late keeps its tail).
* RAW files are measured without writing an ``_info.json`` beside them.
* ``padding=False`` still stops at the shortest slot, but logs a warning naming what is skipped;
  ``balanced=True`` assigns files longest-first to the least-loaded slot to minimise padding.
* Shuffles use a private ``random.Random`` seeded explicitly (never the global RNG, never time).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random

import numpy as np

from evstream.errors import ArgumentError, FileFormatError, MissingFileError
from evstream.data._sources import file_kind, last_event_time, open_event_reader
from evstream.preprocessing.tensor_file import is_tensor_file, read_tensor_attrs

logger = logging.getLogger(__name__)

#: Durations within this many µs below a multiple of the chunk length are rounded up to it.
ROUNDING_TOLERANCE_US = 1000


# --------------------------------------------------------------------------------------------
# durations and sizes
# --------------------------------------------------------------------------------------------
def get_duration(path) -> int:
    """How long a file plays, in µs (the time of its end, counted from 0).

    | file | duration |
    |---|---|
    | ``.dat``, ``.npy``, ``.raw`` | timestamp of the last event (RAW: time-shifted) |
    | ``.h5``, ``.hdf5`` (tensor file) | ``rows * delta_t`` (``last_timestamps[-1]`` in n_events mode) |
    | ``.h5``, ``.hdf5`` (event file) | timestamp of the last event (event arrays: after the time repair) |

    Raises :class:`~evstream.errors.FileFormatError` for other extensions and
    :class:`~evstream.errors.MissingFileError` for a missing file.
    """
    path = os.fspath(path)
    kind = file_kind(path)
    if kind == "h5":
        return read_tensor_attrs(path).duration
    if kind in ("dat", "raw", "npy", "h5_events"):
        return last_event_time(path)
    raise FileFormatError("can't measure the duration of this file: expected .dat, .raw, .npy, "
                          ".h5 or .hdf5", path)


def _get_durations(files) -> list[int]:
    """:func:`get_duration` of every file, in order."""
    return [get_duration(f) for f in files]


def _get_original_size_file(path) -> tuple[int, int]:
    """``(height, width)`` of the sensor a file was recorded with.

    DAT: header; RAW: header (or the geometry fallbacks of :mod:`evstream.io.header`);
    tensor files: attrs ``event_input_height/width``, else the stored size shifted left by the
    attr ``downsampling_factor`` (legacy ``shift``). NPY and DAT files without a size raise
    :class:`~evstream.errors.FileFormatError`.
    """
    path = os.fspath(path)
    kind = file_kind(path)
    if not os.path.isfile(path):
        raise MissingFileError("no such file", path)
    if kind == "h5":
        attrs = read_tensor_attrs(path)
        return attrs.height, attrs.width
    if kind in ("dat", "raw", "h5_events"):
        with open_event_reader(path) as reader:
            size = reader.get_size()
        if size is None or size[0] is None:
            raise FileFormatError("the header gives no sensor size (Height/Width)", path)
        return int(size[0]), int(size[1])
    raise FileFormatError("can't tell the sensor size of this file: expected .dat, .raw, .h5 or "
                          ".hdf5", path)


def _rounding(duration, total, max_batch=None, rounding_tolerance=ROUNDING_TOLERANCE_US):
    """``duration`` (scalar or array, µs) rounded to a multiple of ``total``.

    Rounded up when the remainder is within ``rounding_tolerance`` of ``total``, else down; exact
    multiples are kept. Then capped at ``max_batch * total`` when ``max_batch`` is given.
    """
    scalar = np.ndim(duration) == 0
    d = np.asarray(duration, dtype=np.int64)
    total = int(total)
    r = d % total
    up = (r != 0) & (total - r <= rounding_tolerance)
    result = d - r + np.where(up, total, 0)
    if max_batch is not None:
        result = np.minimum(result, int(max_batch) * total)
    return int(result) if scalar else result


@contextlib.contextmanager
def quiet_logs():
    """Silences this module's warnings inside the block (used when a rank builds the schedules
    of the other ranks only to count their batches)."""
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


# --------------------------------------------------------------------------------------------
# FileMetadata
# --------------------------------------------------------------------------------------------
class FileMetadata:
    """A recording (or a chunk of one) and how it is played.

    Args:
        file: path of the recording.
        duration: end time of the file in µs (not the remaining time).
        delta_t: duration of one time bin (µs).
        num_tbins: time bins per item.
        labels: opaque user data carried along (printed in the repr when truthy).
        start_ts: time (µs) at which playing starts.
        padding: a placeholder item of a slot that has run out of files. It has ``path`` None
            and no timing (the original's padding object has only ``padding``).
    """

    def __init__(self, file, duration, delta_t, num_tbins, labels=None, start_ts=0, padding=False):
        self.padding = bool(padding)
        if self.padding:
            self.path = None
            self.duration = self.delta_t = self.num_tbins = None
            self.labels = None
            self.start_ts = 0
            self._height_orig = self._width_orig = None
            return
        self.path = file
        self.start_ts = int(start_ts)
        self.duration = duration
        self.delta_t = delta_t
        self.num_tbins = num_tbins
        self.labels = labels
        self._height_orig = None
        self._width_orig = None

    def get_original_size(self) -> tuple[int, int]:
        """``(height, width)`` of the sensor, read once from the file."""
        if self.padding:
            raise ArgumentError("a padding item has no file and no size")
        if self._height_orig is None:
            self._height_orig, self._width_orig = _get_original_size_file(self.path)
        return self._height_orig, self._width_orig

    def get_remaining_duration(self) -> int:
        """``duration - start_ts``."""
        return self.duration - self.start_ts

    def get_ending(self) -> str:
        """The suffix that the box file's ``_bbox.npy`` replaces: ``_td.dat``, ``.dat``,
        ``.h5``, ``.hdf5`` or ``.raw`` (the original knows only ``_td.dat`` and ``.h5``)."""
        path = os.fspath(self.path)
        for ending in ("_td.dat", ".dat", ".h5", ".hdf5", ".raw"):
            if path.endswith(ending):
                return ending
        raise ArgumentError("unknown file ending (expected _td.dat, .dat, .h5, .hdf5 or .raw)",
                            path)

    def is_precomputed(self) -> bool:
        """True for tensor files (:func:`~evstream.preprocessing.tensor_file.is_tensor_file`:
        ``.h5``/``.hdf5``, any case, that are not HDF5 event files)."""
        return not self.padding and is_tensor_file(self.path)

    def is_padding(self) -> bool:
        return self.padding

    def __repr__(self) -> str:
        if self.padding:
            return "FileMetadata object PADDING"
        text = (f"FileMetadata object {self.path}\n\tstart_ts {self.start_ts}us delta_t "
                f"{self.delta_t}us, num_tbins {self.num_tbins}, total duration {self.duration}us\n")
        if self.labels:
            text += f"labels {self.labels}"
        return text

    def __hash__(self) -> int:
        return hash(repr(self))

    def __eq__(self, other) -> bool:
        if not isinstance(other, FileMetadata):
            return NotImplemented
        return (self.delta_t == other.delta_t and self.num_tbins == other.num_tbins
                and self.path == other.path and self.start_ts == other.start_ts
                and _labels_equal(self.labels, other.labels))


def _labels_equal(a, b) -> bool:
    try:
        return bool(a == b)
    except (ValueError, TypeError):   # arrays: elementwise comparison
        return a is b


# --------------------------------------------------------------------------------------------
# Scheduler
# --------------------------------------------------------------------------------------------
class Scheduler:
    """Assigns files to batch slots and maps item indices to ``(FileMetadata, start, duration)``.

    Args:
        filesmetadata: list of :class:`FileMetadata` (one per file, or per chunk).
        total_tbins_delta_t: chunk length ``delta_t * num_tbins`` (µs).
        batch_size: number of slots B (must not exceed the number of entries).
        max_consecutive_batch: cap of each entry's played length, in chunks (None: no cap).
        padding: run to the end of the longest slot, filling finished slots with padding items.
            Without padding the schedule stops at the shortest slot (a warning names what is
            skipped).
        base_seed: seed of the transforms (changes on shuffle).
        balanced: slot assignment. False (the original's): round-robin in list order, entry
            ``i`` to slot ``i % B``. True: longest first, each to the slot with the least total
            duration so far (ties to the lowest slot), which minimises padding and skipping.

    Item ``n`` is slot ``n % B`` at step ``n // B``; each slot plays its entries back to back,
    one chunk per step, starting every entry at its ``start_ts``.
    """

    def __init__(self, filesmetadata, total_tbins_delta_t, batch_size, max_consecutive_batch=None,
                 padding=False, base_seed=0, balanced=False):
        self.files = list(filesmetadata)
        self.total_tbins_delta_t = int(total_tbins_delta_t)
        if self.total_tbins_delta_t < 1:
            raise ArgumentError(f"total_tbins_delta_t must be >= 1 µs, got {total_tbins_delta_t}")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ArgumentError(f"batch_size must be >= 1, got {batch_size}")
        if self.files and batch_size > len(self.files):
            raise ArgumentError(f"batch_size {batch_size} is larger than the number of files "
                                f"({len(self.files)}); Scheduler.create_schedule reduces it")
        if not self.files:
            logger.warning("warning: empty schedule!")
        self.batch_size = batch_size
        self.max_consecutive_batch = max_consecutive_batch
        self.padding = bool(padding)
        self.balanced = bool(balanced)
        self.base_seed = int(base_seed)
        self._rng = random.Random(self.base_seed)
        self._construct_schedule()

    # ---------------------------------------------------------------- construction
    @classmethod
    def create_schedule(cls, files, durations, delta_t, num_tbins, batch_size, labels=None,
                        max_consecutive_batch=None, shuffle=True, padding=False, seed=None,
                        balanced=False, start_offsets=None):
        """A Scheduler over ``files`` (paths).

        Args:
            durations: one per file (µs, end time), or ``[]`` to measure them.
            labels: one opaque value per file (default None each).
            max_consecutive_batch: split each file into entries of at most this many chunks.
            shuffle: shuffle the entries (with ``random.Random(seed)``; seed None means 0).
            padding, balanced: see the class.
            start_offsets: one start time (µs) per file (default 0 each): playing starts there
                (used for random start offsets; the first chunk of a file keeps keep_memory 0).

        Missing files are dropped with a warning (an error if none is left); ``batch_size`` is
        reduced, with a warning, to the number of entries when there are fewer.
        """
        files = [os.fspath(f) for f in files]
        total = int(delta_t) * int(num_tbins)
        if not labels:
            labels = [None] * len(files)
        if len(labels) != len(files):
            raise ArgumentError(f"{len(labels)} labels for {len(files)} files")
        offsets = [0] * len(files) if start_offsets is None else [int(o) for o in start_offsets]
        if len(offsets) != len(files) or any(o < 0 for o in offsets):
            raise ArgumentError(f"start_offsets must be {len(files)} values >= 0")
        durations = list(durations) if durations is not None else []
        if durations and len(durations) != len(files):
            raise ArgumentError(f"{len(durations)} durations for {len(files)} files (pass [] to "
                                f"measure them)")
        exists = [os.path.exists(f) for f in files]
        missing = [f for f, e in zip(files, exists) if not e]
        if missing:
            logger.warning("Scheduler: %d missing file(s) dropped: %s", len(missing),
                           ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
            if len(missing) == len(files):
                raise MissingFileError(f"none of the {len(files)} files exists", missing[0])
            keep = [i for i, e in enumerate(exists) if e]
            files = [files[i] for i in keep]
            labels = [labels[i] for i in keep]
            offsets = [offsets[i] for i in keep]
            durations = [durations[i] for i in keep] if durations else []
        if not durations:
            durations = _get_durations(files)
        metadata = []
        for path, duration, label, offset in zip(files, durations, labels, offsets):
            duration = int(duration)
            if max_consecutive_batch is None:
                starts = [offset]
            else:
                step = int(max_consecutive_batch) * total
                starts = range(offset, offset + _rounding(duration - offset - total, total) + 1,
                               step)
            metadata += [FileMetadata(path, duration, delta_t, num_tbins, labels=label, start_ts=s)
                         for s in starts]
        rng = random.Random(0 if seed is None else seed)
        if shuffle:
            rng.shuffle(metadata)
            base_seed = rng.randint(0, 10 ** 9)
        else:
            base_seed = 0
        if metadata and len(metadata) < int(batch_size):
            logger.warning("Warning in Scheduler: batch_size reduced to %d", len(metadata))
            batch_size = len(metadata)
        return cls(metadata, total, batch_size, max_consecutive_batch=max_consecutive_batch,
                   padding=padding, base_seed=base_seed, balanced=balanced)

    def _assign_slots(self, actual: np.ndarray) -> list[list[int]]:
        """Entry indices played by each slot, in playing order."""
        B = self.batch_size
        if not self.balanced:
            return [list(range(slot, len(actual), B)) for slot in range(B)]
        slots: list[list[int]] = [[] for _ in range(B)]
        load = [0] * B
        for i in sorted(range(len(actual)), key=lambda i: -int(actual[i])):  # stable
            slot = min(range(B), key=lambda s: (load[s], s))
            slots[slot].append(i)
            load[slot] += int(actual[i])
        return slots

    def _construct_schedule(self) -> None:
        total = self.total_tbins_delta_t
        durations = np.array([f.duration - f.start_ts for f in self.files], dtype=np.int64)
        actual = _rounding(durations, total, max_batch=self.max_consecutive_batch)
        actual = np.maximum(actual, 0)
        assert np.all(actual % total == 0)
        self.actual_durations = actual
        if not self.files:
            self.slot_files = []
            self.cumulative_time_table_per_batch = []
            self._len = 0
            return
        self.slot_files = self._assign_slots(actual)
        self.cumulative_time_table_per_batch = [np.cumsum(actual[idx]) if idx else
                                                np.zeros(1, np.int64) for idx in self.slot_files]
        ends = [int(c[-1]) for c in self.cumulative_time_table_per_batch]
        played = max(ends) if self.padding else min(ends)
        self._len = int(played // total) * self.batch_size
        self._report_losses(actual, ends, played)

    def _report_losses(self, actual, ends, played) -> None:
        """Warns about what this schedule never plays (nothing is skipped silently)."""
        short = [f.path for f, a in zip(self.files, actual) if a == 0]
        if short:
            logger.warning("Scheduler: %d file(s) shorter than one chunk (%d us) are never read: "
                           "%s", len(short), self.total_tbins_delta_t,
                           ", ".join(map(str, short[:10])) + (" ..." if len(short) > 10 else ""))
        if self.padding:
            return
        skipped, cut = [], []
        for slot, idx in enumerate(self.slot_files):
            cum = self.cumulative_time_table_per_batch[slot]
            for j, i in enumerate(idx):
                begin = int(cum[j - 1]) if j else 0
                if actual[i] == 0:
                    continue
                if begin >= played:
                    skipped.append(f"{self.files[i].path} (all {int(actual[i])} us)")
                elif int(cum[j]) > played:
                    cut.append(f"{self.files[i].path} (last {int(cum[j]) - played} us)")
        if skipped or cut:
            logger.warning(
                "Scheduler with padding=False stops at the shortest slot (%d us of %d us of the "
                "longest): %d file(s) never read%s%s; %d file(s) cut short%s. Use padding=True "
                "to read everything, balanced=True to even out the slots.",
                played, max(ends), len(skipped), ": " if skipped else "", ", ".join(skipped),
                len(cut), (": " + ", ".join(cut)) if cut else "")

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        """Number of items (not batches): steps * batch_size."""
        return self._len

    def num_steps(self) -> int:
        """Number of batches (steps)."""
        return self._len // self.batch_size if self.batch_size else 0

    def __getitem__(self, n):
        """``(FileMetadata, start_us, duration_us)`` of item ``n``; padding items are
        ``(FileMetadata(padding=True), 0, 0)``."""
        n = int(n)
        if n < 0:
            n += self._len
        if not 0 <= n < self._len:
            raise IndexError(f"schedule item {n} out of range [0, {self._len})")
        B, total = self.batch_size, self.total_tbins_delta_t
        step, slot = divmod(n, B)
        iteration_time = (step + 1) * total
        cum = self.cumulative_time_table_per_batch[slot]
        if not self.slot_files[slot] or iteration_time > cum[-1]:
            assert self.padding
            return FileMetadata(None, None, None, None, padding=True), 0, 0
        j = int(np.searchsorted(cum, iteration_time, side="left"))
        file = self.files[self.slot_files[slot][j]]
        elapsed = int(cum[j - 1]) if j else 0
        start = iteration_time - total - elapsed
        assert file.delta_t * file.num_tbins == total
        return file, file.start_ts + start, file.num_tbins * file.delta_t

    def slot_of(self, n: int) -> int:
        return int(n) % self.batch_size

    # ---------------------------------------------------------------- changes
    def shuffle(self, seed=None) -> None:
        """Shuffles the entries (private RNG; ``seed`` re-seeds it), draws a new ``base_seed``
        and rebuilds the schedule."""
        if seed is not None:
            self._rng = random.Random(seed)
        self._rng.shuffle(self.files)
        self.base_seed = self._rng.randint(0, 10 ** 9)
        self._construct_schedule()

    def get_unique_files(self) -> list[str]:
        """Paths of the entries, without repeats, in entry order."""
        return list(dict.fromkeys(f.path for f in self.files))

    def reschedule(self, max_consecutive_batch, num_tbins, delta_t, shuffle=True, seed=None):
        """A new Scheduler over the unique paths with another chunking (durations kept, labels
        dropped)."""
        durations = {}
        for f in self.files:
            durations.setdefault(f.path, f.duration)
        paths = list(durations)
        return Scheduler.create_schedule(paths, [durations[p] for p in paths], delta_t, num_tbins,
                                         self.batch_size, max_consecutive_batch=max_consecutive_batch,
                                         shuffle=shuffle, padding=self.padding, seed=seed,
                                         balanced=self.balanced)

    def remove_files(self, files_to_remove) -> None:
        """Drops every entry whose path is in ``files_to_remove`` and rebuilds the schedule
        (batch size reduced if fewer entries than slots remain)."""
        remove = {os.fspath(f) for f in files_to_remove}
        self.files = [f for f in self.files if f.path not in remove]
        if self.files and len(self.files) < self.batch_size:
            logger.warning("Warning in Scheduler: batch_size reduced to %d", len(self.files))
            self.batch_size = len(self.files)
        self._construct_schedule()

    def __repr__(self) -> str:
        return (f"Scheduler({len(self.files)} entries, batch_size {self.batch_size}, "
                f"{self.num_steps()} steps of {self.total_tbins_delta_t} us, padding "
                f"{self.padding}, balanced {self.balanced})")
