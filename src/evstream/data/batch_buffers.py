"""Batch arrays that the loaders' workers write in place, and how a collation finds them.

:class:`SharedBatchArrays` holds shared-memory batch arrays that a loader allocates before its
workers start: the workers write their batches into them, and the main process hands an array
out as the batch without a copy (the stream loader's
:class:`~evstream.data.stream_ring.BatchPool`, the
:class:`~evstream.data.SequentialDataLoader`'s workers, :mod:`evstream.data.sequential_crew`).
A fresh shared-memory tensor per batch would cost far more than its copy: 27 ms to allocate and
fill a ``[3, 4, 2, 360, 640]`` float32 batch, against 2.6 ms for a reused ordinary one (by hand,
AMD EPYC; shared memory gets no transparent huge pages, and every 4 KiB page is faulted in and
zeroed, then mapped again by the receiving process).

A copied batch (``[T, B, C, H, W]``, 37 MB for histo batches of 4 x 5 x 2 x 360 x 640 float32)
goes into an array of :class:`~evstream.utils.recycled.RecycledArrays`, reused only when nothing
refers to it any more (``sequential_dataset_common.BATCH_BUFFERS``). The same rule recycles the
shared-memory batch arrays into which the stream loader's workers write their items in place
(:class:`~evstream.data.stream_ring.BatchPool`): such an array is registered here
(:func:`register_in_place_batch`), and :func:`in_place_batch` tells a collate function that the
items it got are already the rows of one, so that the batch needs no copy.
"""

from __future__ import annotations

import weakref

import torch

from evstream.utils.recycled import unreferenced
from evstream.utils.shm import shared_empty

#: batch tensors ``[T, N, ...]`` whose rows ``[:, i]`` the stream loader's workers wrote in place
#: (by ``id``: tensors do not compare as set elements)
_IN_PLACE_BATCHES: "weakref.WeakValueDictionary[int, torch.Tensor]" = weakref.WeakValueDictionary()


class SharedBatchArrays:
    """``count`` shared-memory arrays of one batch ``shape`` and ``dtype`` (:attr:`tensors`, and
    :attr:`arrays`, their numpy views, the objects whose references :meth:`free` counts).

    An array is free when nothing refers to it but this object (no batch tensor made from it
    with ``torch.from_numpy(arrays[j])``, no view of such a tensor:
    :func:`~evstream.utils.recycled.unreferenced`) and it is not ``taken`` (chosen for a batch
    that the workers are still writing)."""

    def __init__(self, shape, dtype: torch.dtype, count: int):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dtype
        self.tensors = [shared_empty(self.shape, dtype) for _ in range(int(count))]
        self.arrays = [t.numpy() for t in self.tensors]

    def fits(self, shape, dtype: torch.dtype) -> bool:
        """Whether these arrays hold batches of ``shape`` and ``dtype``."""
        return (tuple(int(n) for n in shape), dtype) == (self.shape, self.dtype)

    def free(self, taken) -> int:
        """The first free array not in ``taken`` (a set of array numbers), -1 when none is."""
        return next((j for j in range(len(self.arrays))
                     if j not in taken and unreferenced(self.arrays, j)), -1)


def register_in_place_batch(batch: torch.Tensor) -> torch.Tensor:
    """Mark ``batch`` (``[T, N, ...]``) as an array whose rows workers fill in place; returns it."""
    _IN_PLACE_BATCHES[id(batch)] = batch
    return batch


def in_place_batch(tensors) -> torch.Tensor | None:
    """The registered batch ``[T, N, ...]`` of which some ``tensors[i]`` is row ``[:, i]`` (a view
    of it there), or None. The other items are not rows of it: the caller copies them in."""
    n = len(tensors)
    for i, t in enumerate(tensors):
        base = getattr(t, "_base", None) if isinstance(t, torch.Tensor) else None
        if base is not None and _IN_PLACE_BATCHES.get(id(base)) is base and base.dim() == t.dim() + 1 \
                and base.shape[1] == n and _is_row(t, base, i):
            return base
    return None


def is_row_of(t, base: torch.Tensor, i: int) -> bool:
    """Whether ``t`` is the view ``base[:, i]`` of the registered batch ``base``."""
    return isinstance(t, torch.Tensor) and getattr(t, "_base", None) is base and _is_row(t, base, i)


def _is_row(t: torch.Tensor, base: torch.Tensor, i: int) -> bool:
    row = base[:, i]
    return t.data_ptr() == row.data_ptr() and t.shape == row.shape and t.stride() == row.stride()
