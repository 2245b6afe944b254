"""Batch arrays that the stream loader's workers write in place, and how a collation finds them.

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

#: batch tensors ``[T, N, ...]`` whose rows ``[:, i]`` the stream loader's workers wrote in place
#: (by ``id``: tensors do not compare as set elements)
_IN_PLACE_BATCHES: "weakref.WeakValueDictionary[int, torch.Tensor]" = weakref.WeakValueDictionary()


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
