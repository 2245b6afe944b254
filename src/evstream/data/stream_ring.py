"""The shared-memory ring of the stream loader, and :func:`stream_output`, the streamers' way in.

A streamer that gets its output tensors from :func:`stream_output` (as
:class:`~evstream.data.cd_processor_dataset.CDProcessorDataLoader` does) writes them, in a worker
of a :class:`~evstream.data.stream.StreamDataLoader`, straight into a small ring of shared-memory
buffers per slot (``ring_depth`` per slot output, allocated once per iteration with
:func:`~evstream.utils.shm.shared_empty` and mapped once by the main process); messages then
carry only a :class:`RingRef` to the buffer. The main process tells the worker when a step has
been collated (one shared counter per worker, plus a stop flag: the *control* tensor) and the
worker reuses a buffer only after that, so ``collate_fn`` must copy tensors.

Which ring :func:`stream_output` draws from is a context, as torch's ``get_worker_info()``: the
worker loop sets the *current outputs* of the slot whose item is being computed
(:func:`current_outputs`, a :mod:`contextvars` variable, not a module-level list) and resets it
after the item; outside of that (in the main process, with ``num_workers=0``, in any other code)
:func:`stream_output` returns a new ordinary tensor.

**Batches written in place.** A loader that knows the shape and dtype of its items' first output
(``StreamDataLoader(batch_output=...)``, which
:class:`~evstream.data.cd_processor_dataset.CDProcessorDataLoader` sets) also gets a
:class:`BatchPool`: a few shared-memory batch arrays ``[T, B, ...]`` allocated by the main
process before the workers start. The main process assigns one of them to each step (a shared
table, written before it frees the step for the workers) and the workers write their items'
first output straight into its row ``[:, slot]``; the messages carry a :class:`PoolRef`, and the
collation hands the array itself out as the batch (no copy in the main process, which is then
free for the training step). An array is assigned again only once nothing refers to it any more
(:func:`~evstream.utils.recycled.unreferenced`); when none is free (the caller keeps many
batches), the step is assigned no array and its items go through the ring and are copied, as
without a pool.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections import namedtuple

import torch

from evstream.data.batch_buffers import SharedBatchArrays, register_in_place_batch
from evstream.utils.shm import shared_empty

__all__ = ["BatchPool", "PoolRef", "PoolShare", "Ring", "RingRef", "SlotOutputs", "Stopped",
           "computing_item", "current_outputs", "stream_output", "resolve_refs"]

#: How long a worker sleeps between two looks at the main process's progress (s).
POLL_S = 0.0002


class Stopped(Exception):
    """The main process ended the iteration while a worker waited for a ring buffer."""


class RingRef(namedtuple("RingRef", "ring_id")):
    """Stands for a ring buffer inside a message (the main process holds the buffer itself)."""


class PoolRef(namedtuple("PoolRef", "array slot")):
    """Stands for row ``[:, slot]`` of batch array ``array`` of the :class:`BatchPool`."""


#: What the workers get of a :class:`BatchPool`: its shared tensors ``[T, B, ...]`` and the shared
#: int64 table ``assign`` (``assign[step % depth]``: the array of ``step``, -1 for none).
PoolShare = namedtuple("PoolShare", "tensors assign")


class BatchPool:
    """Main side of the batches written in place (module docstring): ``depth + spare``
    shared-memory arrays ``[item_shape[0], batch_size, *item_shape[1:]]`` of ``dtype``.

    The array of step ``k`` is chosen when step ``k - depth`` is released (:meth:`release`; steps
    below ``depth`` by :meth:`restart`, at construction), before the workers may start step
    ``k``. A loader keeps its pool from one iteration to the next (allocating and mapping the
    arrays is the costly part) and restarts it."""

    def __init__(self, item_shape, dtype: torch.dtype, batch_size: int, depth: int,
                 spare: int = 3):
        self.item_shape = tuple(int(n) for n in item_shape)
        self.dtype = dtype
        shape = (self.item_shape[0], int(batch_size)) + self.item_shape[1:]
        self.batches = SharedBatchArrays(shape, dtype, depth + spare)
        self.depth = depth
        assign = torch.full((depth,), -1, dtype=torch.int64).share_memory_()
        self.share = PoolShare(self.batches.tensors, assign)
        self._assign = assign.numpy()
        self._pending: dict[int, int] = {}               # step -> array, not yet collated
        self._batches: dict[int, torch.Tensor] = {}      # array -> batch tensor of this step
        self.restart()

    def fits(self, item_shape, dtype: torch.dtype, batch_size: int, depth: int) -> bool:
        """Whether this pool serves items of ``item_shape`` and ``dtype`` in batches of
        ``batch_size`` with ring depth ``depth``."""
        shape = (item_shape[0], batch_size) + tuple(item_shape[1:])
        return self.batches.fits(shape, dtype) and depth == self.depth

    def restart(self) -> None:
        """A new iteration from step 0 (arrays still held from the last one are skipped)."""
        self._pending.clear()
        self._batches.clear()
        for step in range(self.depth):
            self._assign_step(step)

    def _assign_step(self, step: int) -> None:
        free = self.batches.free(set(self._pending.values()))
        if free >= 0:
            self._pending[step] = free
        self._assign[step % self.depth] = free

    def row(self, ref: PoolRef) -> torch.Tensor:
        """The row that ``ref`` stands for, a view of this step's batch tensor of its array
        (registered with :func:`~evstream.data.batch_buffers.register_in_place_batch`)."""
        batch = self._batches.get(ref.array)
        if batch is None:
            batch = register_in_place_batch(torch.from_numpy(self.batches.arrays[ref.array]))
            self._batches[ref.array] = batch
        return batch[:, ref.slot]

    def release(self, step: int) -> None:
        """Step ``step`` is collated: assign an array to step ``step + depth`` (call before
        freeing the step for the workers)."""
        self._batches.clear()
        self._pending.pop(step, None)
        self._assign_step(step + self.depth)


class Ring:
    """The ring buffers of one worker. Buffer ``(key, step % depth)`` is handed out for ``step``;
    it may be written only once the main process has collated step ``step - depth``.

    ``control`` is the shared int64 tensor ``[consumed steps of worker 0, ..., stop flag]``
    written by the main process."""

    def __init__(self, worker_id: int, control: torch.Tensor, depth: int,
                 pool: PoolShare | None = None):
        self.worker_id = worker_id
        self.control = control.numpy()
        self.depth = depth
        self.buffers: dict = {}                  # key -> [depth tensors]
        self.refs: dict = {}                     # data_ptr -> (ring id, buffer)
        self.new: dict = {}                      # ring id -> buffer, not sent yet
        self.step = 0
        self.wait_s = 0.0
        self._ppid = os.getppid()
        self.pool = pool
        self.pool_rows: dict = {}                # data_ptr -> (PoolRef, row)
        if pool is not None:
            self._assign = pool.assign.numpy()
            for j, batch in enumerate(pool.tensors):
                for slot in range(batch.shape[1]):
                    row = batch[:, slot]
                    self.pool_rows[row.data_ptr()] = (PoolRef(j, slot), row)
            first = pool.tensors[0]
            self._pool_item = ((first.shape[0],) + tuple(first.shape[2:]), first.dtype)

    def allocate(self, key, shape, dtype) -> torch.Tensor:
        """The buffer of ``key`` (``(slot, rank of the call within the item)``, with this shape
        and dtype) for the current :attr:`step`: the slot's row of the step's pool array for
        an item's first output of the pool's layout when the step has one, else a ring buffer."""
        if self.pool is not None and key[1] == 0 and (tuple(shape), dtype) == self._pool_item:
            j = int(self._assign[self.step % self.depth])
            if j >= 0:
                return self.pool.tensors[j][:, key[0]]
        full_key = (key, tuple(shape), dtype)
        ring = self.buffers.get(full_key)
        if ring is None:
            ring = []
            for _ in range(self.depth):
                buf = shared_empty(shape, dtype)
                ring_id = len(self.refs)
                self.refs[buf.data_ptr()] = (ring_id, buf)
                self.new[ring_id] = buf
                ring.append(buf)
            self.buffers[full_key] = ring
        return ring[self.step % self.depth]

    def wait_until_free(self, step: int) -> None:
        """Block until the buffers of ``step`` are free (step ``step - depth`` collated); raises
        :class:`Stopped` when the main process stopped the iteration (checked before every
        step, so that kept workers end it within one step) or died."""
        need = step - self.depth + 1
        ctl = self.control
        if ctl[-1]:
            raise Stopped()
        if (not self.buffers and self.pool is None) or ctl[self.worker_id] >= need:
            return
        t0 = time.perf_counter()
        while ctl[self.worker_id] < need:
            if ctl[-1] or os.getppid() != self._ppid:
                raise Stopped()
            time.sleep(POLL_S)
        self.wait_s += time.perf_counter() - t0

    def to_refs(self, data):
        """``data`` with every ring buffer replaced by a :class:`RingRef`."""
        if isinstance(data, torch.Tensor):
            row = self.pool_rows.get(data.data_ptr()) if data.numel() else None
            if row is not None and data.shape == row[1].shape and data.stride() == row[1].stride():
                return row[0]
            found = self.refs.get(data.data_ptr()) if data.numel() else None
            if found is not None:
                buf = found[1]
                if data is buf or (data.shape == buf.shape and data.dtype == buf.dtype
                                   and data.is_contiguous()):
                    return RingRef(found[0])
            return data
        if isinstance(data, tuple) and not hasattr(data, "_fields"):
            return tuple(self.to_refs(v) for v in data)
        if isinstance(data, list):
            return [self.to_refs(v) for v in data]
        if isinstance(data, dict):
            return {k: self.to_refs(v) for k, v in data.items()}
        return data

    def take_new(self) -> dict | None:
        """The buffers created since the last call (to send once), or None."""
        new, self.new = self.new, {}
        return new or None


class SlotOutputs:
    """Where :func:`stream_output` takes buffers from while one slot's item is computed: the
    worker's ring, keyed by the slot and the rank of the call within the item."""

    def __init__(self, ring: Ring, slot: int):
        self.ring = ring
        self.slot = slot
        self.calls = 0

    def allocate(self, shape, dtype) -> torch.Tensor:
        key = (self.slot, self.calls)
        self.calls += 1
        return self.ring.allocate(key, shape, dtype)


#: The :class:`SlotOutputs` of the item being computed (None: no ring).
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("evstream_stream_outputs",
                                                          default=None)


class computing_item:  # noqa: N801 - used as a function: ``with computing_item(outputs):``
    """Makes ``outputs`` (None: no ring) the current outputs for the ``with`` block, which
    computes one item (a plain class rather than a generator: it runs once per item)."""

    __slots__ = ("outputs", "token")

    def __init__(self, outputs: SlotOutputs | None):
        self.outputs = outputs

    def __enter__(self) -> SlotOutputs | None:
        if self.outputs is not None:
            self.outputs.calls = 0
        self.token = _CURRENT.set(self.outputs)
        return self.outputs

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self.token)


def current_outputs() -> SlotOutputs | None:
    """The :class:`SlotOutputs` of the item being computed in this context, or None."""
    return _CURRENT.get()


def stream_output(shape, dtype=torch.float32) -> torch.Tensor:
    """A tensor for a streamer to fill with (part of) the item it is computing.

    Called by a streamer running in a :class:`~evstream.data.stream.StreamDataLoader` worker, it
    returns a reusable shared-memory ring buffer (see the module docstring): fill it and put it,
    unchanged, in the item; it stays valid until the main process has collated the step. Called
    anywhere else, it returns a new uninitialised tensor. Successive calls for one item return
    distinct buffers.
    """
    outputs = _CURRENT.get()
    if outputs is None:
        return torch.empty(tuple(shape), dtype=dtype)
    return outputs.allocate(shape, dtype)


def resolve_refs(data, buffers: dict, pool: BatchPool | None = None):
    """Main side: ``data`` with every :class:`RingRef` replaced by its buffer and every
    :class:`PoolRef` by its row of ``pool``."""
    if isinstance(data, RingRef):
        return buffers[data.ring_id]
    if isinstance(data, PoolRef):
        return pool.row(data)
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return tuple(resolve_refs(v, buffers, pool) for v in data)
    if isinstance(data, list):
        return [resolve_refs(v, buffers, pool) for v in data]
    if isinstance(data, dict):
        return {k: resolve_refs(v, buffers, pool) for k, v in data.items()}
    return data
