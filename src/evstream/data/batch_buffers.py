"""Batch arrays recycled once nobody holds them: new batches without fresh pages.

The stream loader's main process copies every step's items into a new ``[T, B, C, H, W]`` array
(37 MB for histo batches of 4 x 5 x 2 x 360 x 640 float32). A new array of that size is a fresh
memory mapping, and writing it first costs the kernel a page fault and a zeroed page per 4 KiB
(or 2 MiB) page: about half of the copy's time, taken from the cores the workers run on.

:class:`BatchBuffers` hands out arrays that are reused only when **nothing refers to them any
more**: a batch tensor made with ``torch.from_numpy`` keeps its array referenced through its
storage, and so does every view, slice or ``.numpy()`` array taken from it, as long as any of
them lives. A batch the caller still holds (or any part of it) is therefore never overwritten;
dropped batches are recycled. At most ``keep`` arrays are kept (a loop that keeps the previous
batch while the next is made, plus one for a prefetcher); beyond that, arrays are plain
allocations.

The same rule recycles the shared-memory batch arrays into which the stream loader's workers
write their items in place (:class:`~evstream.data.stream_ring.BatchPool`): such an array is
registered here (:func:`register_in_place_batch`), and :func:`in_place_batch` tells a collate
function that the items it got are already the rows of one, so that the batch needs no copy.
"""

from __future__ import annotations

import sys
import threading
import weakref

import numpy as np
import torch

#: references to a pooled array that nobody else holds, seen by ``sys.getrefcount(pool[k])``:
#: the pool's list and getrefcount's own argument
_ONLY_THE_POOL = 2

#: batch tensors ``[T, N, ...]`` whose rows ``[:, i]`` the stream loader's workers wrote in place
#: (by ``id``: tensors do not compare as set elements)
_IN_PLACE_BATCHES: "weakref.WeakValueDictionary[int, torch.Tensor]" = weakref.WeakValueDictionary()


def unreferenced(arrays: list, k: int) -> bool:
    """Whether nothing but the list ``arrays`` refers to ``arrays[k]`` (no tensor made from it
    with ``torch.from_numpy``, no view, slice, storage or ``.numpy()`` array of one)."""
    return sys.getrefcount(arrays[k]) <= _ONLY_THE_POOL


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


class BatchBuffers:
    """A small pool of arrays, reused when unreferenced (module docstring).

    Args:
        keep: most arrays kept for reuse (their memory stays allocated while kept).
    """

    def __init__(self, keep: int = 3):
        self.keep = int(keep)
        self._arrays: list[np.ndarray] = []       # least recently handed out first
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``: a kept one that nobody refers to
        any more, or a new one (kept if there is room)."""
        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        with self._lock:
            arrays = self._arrays
            free = [k for k in range(len(arrays)) if unreferenced(arrays, k)]
            for k in free:
                if arrays[k].shape == shape and arrays[k].dtype == dtype:
                    arrays.append(arrays.pop(k))
                    return arrays[-1]
            if len(arrays) >= self.keep:
                if not free:
                    return np.empty(shape, dtype)
                del arrays[free[0]]                 # a free array of another shape
            arrays.append(np.empty(shape, dtype))
            return arrays[-1]

    def __len__(self) -> int:
        return len(self._arrays)
