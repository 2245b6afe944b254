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
"""

from __future__ import annotations

import sys
import threading

import numpy as np

#: references to a pooled array that nobody else holds, seen by ``sys.getrefcount(pool[k])``:
#: the pool's list and getrefcount's own argument
_ONLY_THE_POOL = 2


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
            free = [k for k in range(len(arrays)) if sys.getrefcount(arrays[k]) <= _ONLY_THE_POOL]
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
