"""Shared-memory tensors: the one place that calls torch's private allocator.

A tensor made by :func:`shared_empty` lives in shared memory from the start, so a worker process
can hand it to the main process without a copy (torch's pickling sends a handle) and both can
keep writing / reading the same buffer. ``torch.UntypedStorage._new_shared`` is private API (it is
what ``Tensor.share_memory_()`` uses under the hood, without the first private allocation and
copy); when a torch version lacks it, the fallback allocates an ordinary tensor and moves it to
shared memory with the public ``share_memory_()`` (one extra copy, same result).
"""

from __future__ import annotations

import math

import torch

__all__ = ["shared_empty"]


def shared_empty(shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``shape`` and ``dtype`` in shared memory."""
    shape = tuple(int(s) for s in shape)
    nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
    try:
        storage = torch.UntypedStorage._new_shared(max(nbytes, 1))
    except (AttributeError, RuntimeError, TypeError):     # private API gone or refused
        return torch.empty(shape, dtype=dtype).share_memory_()
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)
