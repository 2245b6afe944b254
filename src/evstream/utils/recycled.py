"""Arrays recycled once nobody holds them: new results without fresh pages.

A new array of several MB is a fresh memory mapping, and writing it first costs the kernel a page
fault and a zeroed page per 4 KiB (or 2 MiB) page: about half the time of a copy into it, and
about a third of the time of a decoder filling it (``benchmarks/bench_peers.py``, the alloc +
first-touch bound). :class:`RecycledArrays` hands out arrays that are reused only when **nothing
refers to them any more**: every view or slice of an array refers to it, and so does a tensor
made from it with ``torch.from_numpy`` (through its storage) and every view, storage or
``.numpy()`` array of that tensor, as long as any of them lives. A result the caller still holds,
or any part of it, is therefore never overwritten; dropped results are recycled. At most
``keep`` arrays are kept (a loop that keeps the previous result while the next is made, plus
one); beyond that, arrays are plain allocations. numpy only (used by :mod:`evstream.io`).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = ["RecycledArrays", "unreferenced"]

#: references to a kept array that nobody else holds, seen by ``sys.getrefcount(arrays[k])``:
#: the list's and getrefcount's own argument
_ONLY_THE_LIST = 2


def unreferenced(arrays: list, k: int) -> bool:
    """Whether nothing but the list ``arrays`` refers to ``arrays[k]`` (no view or slice of it,
    no tensor made from it, no view, storage or ``.numpy()`` array of such a tensor)."""
    return sys.getrefcount(arrays[k]) <= _ONLY_THE_LIST


class RecycledArrays:
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
        return self._take(lambda a: a.shape == shape and a.dtype == dtype,
                          lambda: np.empty(shape, dtype))

    def at_least(self, n: int, dtype) -> np.ndarray:
        """An uninitialised 1-D array of ``n`` elements of ``dtype``: the first ``n`` of a kept
        one-dimensional array of ``n`` to ``2 n`` elements that nobody refers to any more, or of
        a new one of ``1.5 n`` (kept if there is room, the margin serving the next, slightly
        larger, requests). The result is a view: holding it holds the array."""
        n, dtype = int(n), np.dtype(dtype)
        whole = self._take(lambda a: a.ndim == 1 and a.dtype == dtype and n <= len(a) <= 2 * n,
                           lambda: np.empty(n + n // 2, dtype))
        return whole[:n]

    def _take(self, fits, new) -> np.ndarray:
        with self._lock:
            arrays = self._arrays
            free = [k for k in range(len(arrays)) if unreferenced(arrays, k)]
            for k in free:
                if fits(arrays[k]):
                    arrays.append(arrays.pop(k))
                    return arrays[-1]
            if len(arrays) >= self.keep:
                if not free:
                    return new()
                del arrays[free[0]]                 # a free array of another size
            arrays.append(new())
            return arrays[-1]

    def __len__(self) -> int:
        return len(self._arrays)
