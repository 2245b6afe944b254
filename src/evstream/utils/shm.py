"""Shared-memory tensors: the one place that calls torch's private allocator.

A tensor made by :func:`shared_empty` lives in shared memory from the start, so a worker process
can hand it to the main process without a copy (torch's pickling sends a handle) and both can
keep writing / reading the same buffer. ``torch.UntypedStorage._new_shared`` is private API (it is
what ``Tensor.share_memory_()`` uses under the hood, without the first private allocation and
copy); when a torch version lacks it, the fallback allocates an ordinary tensor and moves it to
shared memory with the public ``share_memory_()`` (one extra copy, same result).

Shared memory lives in :data:`SHM_FOLDER` (a tmpfs; a container's is often 64 MiB by default).
When it is full, torch's allocator fails at once (it reserves the pages, so no SIGBUS later) and
:func:`shared_empty` raises :class:`~evstream.errors.OutputWriteError` naming the folder, the
size asked for and the room left.
"""

from __future__ import annotations

import math
import shutil

import torch

from evstream.errors import OutputWriteError

__all__ = ["SHM_FOLDER", "shared_empty"]

#: where POSIX shared memory (``shm_open``, torch's file-descriptor strategy) lives on Linux
SHM_FOLDER = "/dev/shm"


def shared_empty(shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``shape`` and ``dtype`` in shared memory.

    Raises:
        OutputWriteError: the shared memory is full.
    """
    shape = tuple(int(s) for s in shape)
    nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
    try:
        try:
            storage = torch.UntypedStorage._new_shared(max(nbytes, 1))
        except (AttributeError, RuntimeError, TypeError) as exc:  # private API gone or refused
            if _no_space(exc):
                raise
            return torch.empty(shape, dtype=dtype).share_memory_()
    except RuntimeError as exc:
        if _no_space(exc):
            raise _shared_memory_full(nbytes) from None
        raise
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def _no_space(exc: BaseException) -> bool:
    """Whether torch's error says the shared memory is full (ENOSPC)."""
    return isinstance(exc, RuntimeError) and "No space left on device" in str(exc)


def _shared_memory_full(nbytes: int) -> OutputWriteError:
    try:
        usage = shutil.disk_usage(SHM_FOLDER)
        room = f"{usage.free / 2**20:.0f} MiB free of {usage.total / 2**20:.0f} MiB"
    except OSError:
        room = "its size unknown"
    return OutputWriteError(
        f"shared memory full: cannot allocate {nbytes / 2**20:.1f} MiB for loader batches or "
        f"buffers ({room}); give it more room (a container: e.g. docker run --shm-size=8g), "
        f"or use fewer workers or smaller batches", SHM_FOLDER)
