"""The worker processes of a :class:`~evstream.data.SequentialDataLoader` iteration, and the
workers it keeps from one iteration to the next (``persistent_workers=True``): a
:class:`SequentialCrew`.

**Each worker its own slots.** With ``W`` workers and at least ``W`` slots per batch, every batch
is cut into ``W`` groups of neighbouring slots, one torch task each, and torch hands task ``i``
of an iteration to worker ``i % W``: worker ``w`` makes group ``w`` of every batch, so it plays
its slots' recordings chunk after chunk (a DAT / RAW reader goes on from its cursor; whole
batches in turn would make every worker seek in every file at every batch: by hand, every
other batch of an epoch cost 1-27 % more per batch than all of them, DAT and RAW) and opens only their files. With fewer slots than
workers, whole batches go to the workers in turn. Which worker makes a task never changes what
it holds.

**Batches written in place.** A crew owns a few shared-memory batch arrays
(:class:`~evstream.data.batch_buffers.SharedBatchArrays`, allocated before its workers start:
the batches of the tasks in flight, plus the one being handed out and the one the caller still
holds). When torch hands out the first task of a batch, the main process chooses a free array
for the batch (:class:`TaskSampler`); the workers write their groups into their slots of it
and send the rest of the batch dict (labels, masks, infos), which the main process joins,
handing the array itself out as ``inputs`` (:meth:`SequentialCrew.next_batch`). An array is
chosen again only once nothing refers to it any more; when none is free (the caller keeps many
batches), the batch gets none and each worker sends a new shared-memory tensor, as torch does.

**What reaches the workers.** A task carries its schedule entries ``(FileMetadata, start_us,
duration_us)`` and the transforms' ``base_seed``, resolved in the main process, so kept workers
play each epoch's schedule (``set_epoch``, ``shuffle``, ``reschedule``, ``load_state_dict``)
without a copy of it. The per-file tables (sensor sizes, tensor-file attributes) are those of
the dataset when the workers started: a crew of kept workers serves only while they cover every
file of the dataset (:meth:`SequentialCrew.fits`); a schedule with files new since then (another
rank's share of a later epoch) starts new workers. Other changes to the dataset after the
workers started (its ``transforms``, its ``load_labels``) do not reach kept workers, as with
torch's ``persistent_workers``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from evstream.data._workers import (forget_worker_pids, pending_tasks, stop_workers,
                                    watch_worker_pids, workers_alive)
from evstream.data.batch_buffers import SharedBatchArrays
from evstream.data.sequential_dataset_common import collate_fn

__all__ = ["BatchTask", "TaskSampler", "TaskDataset", "SequentialCrew", "slot_groups",
           "join_parts"]

#: tasks torch keeps in flight per worker (its ``prefetch_factor`` default)
PREFETCH_FACTOR = 2
#: shared arrays beyond those of the batches in flight: the one handed out, the one held
SPARE_ARRAYS = 2
#: the batch dict's small tensors, which a worker sends as numpy arrays (pickled by value):
#: sent as tensors, each went through shared memory and a file-descriptor handover with the
#: worker (by hand, under cProfile: 0.36 s of the main process's CPU for 240 of them)
SMALL_TENSORS = ("mask_keep_memory", "frame_is_labeled")


class BatchTask(NamedTuple):
    """One group of slots of a batch for a worker: the shared array of the batch (-1: none, send
    a new tensor), the group's first slot, its schedule entries ``[(FileMetadata, start_us,
    duration_us)]`` and the transforms' seed."""

    array: int
    first_slot: int
    entries: list
    base_seed: int


def slot_groups(batch_size: int, workers: int) -> list[tuple[int, int]]:
    """``[(first, stop)]`` slot ranges of one batch's tasks: ``workers`` groups of neighbouring
    slots (sizes differ by at most one, the larger first) when ``batch_size >= workers``, else
    the whole batch."""
    n = workers if batch_size >= workers > 0 else 1
    size, extra = divmod(batch_size, n)
    bounds = [0]
    for g in range(n):
        bounds.append(bounds[-1] + size + (g < extra))
    return list(zip(bounds[:-1], bounds[1:]))


def _identity(x):
    return x


class TaskSampler:
    """torch's ``batch_sampler`` of a crew: yields the :class:`BatchTask` of each group of each
    batch of the current iteration (:meth:`set_batches`), choosing the batch's array when torch
    asks for its first task, i.e. when it hands that task to a worker."""

    def __init__(self, arrays: SharedBatchArrays, groups: list[tuple[int, int]]):
        self.arrays = arrays
        self.groups = groups
        self.batches: list = []
        self.in_flight: set[int] = set()       # arrays chosen for batches not yet received

    def set_batches(self, batches: list) -> None:
        """``batches``: ``[(entries, base_seed)]``, one per batch of the next iteration."""
        self.batches = batches
        self.in_flight = set()

    def __len__(self) -> int:
        return len(self.batches) * len(self.groups)

    def __iter__(self):
        for entries, base_seed in self.batches:
            array = self.arrays.free(self.in_flight)
            if array >= 0:
                self.in_flight.add(array)
            for first, stop in self.groups:
                yield BatchTask(array, first, entries[first:stop], base_seed)

    def task_entries(self, task: int) -> tuple[int, list]:
        """``(batch, entries)`` of task number ``task`` of the iteration (batch counted from
        the iteration's first)."""
        batch, group = divmod(task, len(self.groups))
        first, stop = self.groups[group]
        return batch, self.batches[batch][0][first:stop]


class TaskDataset(torch.utils.data.Dataset):
    """What a crew's workers run: the group of a :class:`BatchTask`, as ``(array, batch dict of
    the group)`` (``inputs`` None when it is written into shared array ``array``)."""

    def __init__(self, dataset, tensors: list):
        self.dataset = dataset
        self.tensors = tensors

    def __getitems__(self, task: BatchTask):
        out = None
        if task.array >= 0:
            out = self.tensors[task.array][:, task.first_slot:task.first_slot + len(task.entries)]
        part = collate_fn(self.dataset.load_batch(task.entries, task.base_seed, out))
        if out is not None:
            part["inputs"] = None                 # the main process has the array
        for key in SMALL_TENSORS:                 # sent by value, not as shared memory
            part[key] = part[key].numpy()
        return task.array, part


def join_parts(parts: list[dict], inputs: torch.Tensor | None) -> dict:
    """One batch dict from the batch dicts of its slot groups as the workers send them (the
    :data:`SMALL_TENSORS` as numpy arrays), in slot order; ``inputs`` when given (the shared
    array they were written into), else theirs joined."""
    num_tbins = len(parts[0]["labels"])
    return {
        "inputs": inputs if inputs is not None else
        parts[0]["inputs"] if len(parts) == 1 else torch.cat([p["inputs"] for p in parts], 1),
        "labels": [[label for p in parts for label in p["labels"][t]] for t in range(num_tbins)],
        "mask_keep_memory": torch.from_numpy(np.concatenate([p["mask_keep_memory"]
                                                             for p in parts])),
        "frame_is_labeled": torch.from_numpy(np.concatenate([p["frame_is_labeled"]
                                                             for p in parts], 1)),
        "video_infos": tuple(info for p in parts for info in p["video_infos"]),
    }


class SequentialCrew:
    """A torch ``DataLoader`` over a :class:`TaskDataset` of ``dataset`` with ``workers``
    processes, and its shared batch arrays (module docstring).

    Args:
        dataset: the loader's :class:`~evstream.data.sequential_dataset.SequentialDataset` (the
            workers get a copy when they start).
        workers: worker processes.
        timeout: seconds to wait for a worker's task (0: forever).
        persistent: torch's ``persistent_workers`` (else the workers end with the iteration).
    """

    def __init__(self, dataset, workers: int, timeout: float, persistent: bool):
        self.key = self._key(dataset, workers, timeout)
        self.persistent = persistent
        self.files = dataset.checked_files
        groups = slot_groups(dataset.batch_size, workers)
        in_flight = math.ceil(PREFETCH_FACTOR * workers / len(groups)) + 1
        self.arrays = SharedBatchArrays(dataset.batch_shape(), dataset.batch_dtype,
                                        in_flight + SPARE_ARRAYS)
        self.sampler = TaskSampler(self.arrays, groups)
        self._torch_loader = torch.utils.data.DataLoader(
            TaskDataset(dataset, self.arrays.tensors), batch_sampler=self.sampler,
            num_workers=workers, collate_fn=_identity, prefetch_factor=PREFETCH_FACTOR,
            persistent_workers=persistent, timeout=timeout)
        self.iterator = None

    @staticmethod
    def _key(dataset, workers: int, timeout: float) -> tuple:
        """What a crew is made with: its workers, their timeout, the batches' shape and dtype."""
        return workers, timeout, dataset.batch_shape(), dataset.batch_dtype

    def fits(self, dataset, workers: int, timeout: float) -> bool:
        """Whether this crew serves an iteration of ``dataset`` with these options (kept
        workers: only while their per-file tables cover the dataset's files)."""
        return self.key == self._key(dataset, workers, timeout) \
            and (not self.persistent or dataset.checked_files <= self.files)

    def start(self, batches: list):
        """Begin an iteration of ``batches`` (``[(entries, base_seed)]``): returns torch's
        iterator of the workers' ``(array, part)``, or None when a kept worker has died (then
        stop the crew and make another). New workers (not ``persistent``, or the first
        iteration) start here, with a copy of the dataset as it is now."""
        kept = self.iterator
        if kept is not None and not workers_alive(kept):
            return None
        self.sampler.set_batches(batches)
        if kept is not None:
            watch_worker_pids(kept)
        self.iterator = iter(self._torch_loader)
        return self.iterator

    def next_batch(self) -> dict:
        """The next batch dict of the iteration: its groups received and joined, ``inputs`` the
        shared array they were written into (or their own tensors, joined)."""
        parts = []
        for _ in self.sampler.groups:
            array, part = next(self.iterator)
            parts.append(part)
        inputs = None
        if array >= 0:
            inputs = torch.from_numpy(self.arrays.arrays[array])
            self.sampler.in_flight.discard(array)
        return join_parts(parts, inputs)

    def pending(self, worker: int | None) -> list[tuple[int, list]]:
        """``(batch, entries)`` of the tasks handed to ``worker`` whose results have not
        arrived (None: the one waited for), batches counted from the iteration's first."""
        iterator = self.iterator
        if worker is None:
            tasks = [getattr(iterator, "_rcvd_idx", 0)]
        else:
            tasks = pending_tasks(iterator, worker)
        return [self.sampler.task_entries(t) for t in tasks
                if 0 <= t < len(self.sampler)]

    def finish(self) -> None:
        """End the iteration, at its end or before: kept workers (``persistent``) wait for the
        next one, out of torch's SIGCHLD check (a death is seen at :meth:`start`; torch drains
        what they still make then); others are stopped. The shared arrays stay."""
        if self.iterator is None:
            return
        if self.persistent:
            forget_worker_pids(self.iterator)
        else:
            stop_workers(self.iterator)
            self.iterator = None

    def stop(self) -> None:
        """Stop the workers for good (killed if they do not exit)."""
        stop_workers(self.iterator)
        self.iterator = None
        self._torch_loader = None
