"""Data augmentation of ``[T, C, H, W]`` tensors, consistent over the bins and channels of a chunk.

A transform is any callable taking one plane and returning a plane of the same size, such as a
torchvision transform (``RandomHorizontalFlip``, ``RandomAffine``, ...) or a ``Compose`` of them.
It is applied to every (bin, channel) plane of a chunk with Python's ``random`` and torch's RNG
re-seeded with the same seed before each plane, so a random transform does the same thing to
every plane of the chunk (a flip flips the whole chunk, not some bins).

The seed is stable: ``zlib.crc32`` of the file path and the chunk's ``start_ts``, plus
``base_seed`` (which the scheduler redraws on shuffle). It does not depend on ``PYTHONHASHSEED``
or on the process, so worker processes and reruns augment identically (the original seeds with
``hash(repr(metadata))``). The caller's RNG states are restored afterwards.

Planes are given to the transform as float torch tensors ``[1, H, W]`` (the original builds PIL
images); a transform may return a tensor, a numpy array or a PIL image.
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch

__all__ = ["transform_sequence", "transform_ev_tensor", "stable_seed"]


def stable_seed(key, base_seed=0) -> int:
    """``(crc32(str(key)) + base_seed) mod 2**63``: the same in every process and run."""
    return (zlib.crc32(str(key).encode("utf-8")) + int(base_seed)) % (1 << 63)


def _metadata_key(metadata) -> str:
    path = getattr(metadata, "path", None)
    if path is None and not hasattr(metadata, "padding"):
        return str(metadata)          # a plain value (the iterators pass a constant)
    return f"{path}@{getattr(metadata, 'start_ts', 0)}"


def _as_tensor(result, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(result, torch.Tensor):
        result = torch.from_numpy(np.array(result, dtype=np.float32, copy=True))
    return result.reshape(like.shape[-2:]).to(like.dtype)


def _apply(sequence, transforms, seed: int):
    if transforms is None:
        return sequence
    py_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            T, C = sequence.shape[:2]
            for t in range(T):
                for c in range(C):
                    random.seed(seed)
                    torch.manual_seed(seed)
                    plane = sequence[t, c][None].float()
                    sequence[t, c] = _as_tensor(transforms(plane), sequence[t, c])
    finally:
        random.setstate(py_state)
    return sequence


def transform_sequence(sequence, metadata, transforms, base_seed=0):
    """Applies ``transforms`` to every plane of ``sequence`` (torch ``[T, C, H, W]``, modified
    in place and returned), seeded from ``metadata`` (path and start) and ``base_seed``.
    No-op when ``transforms`` is None."""
    if transforms is None:
        return sequence
    return _apply(sequence, transforms, stable_seed(_metadata_key(metadata), base_seed))


def transform_ev_tensor(ev_tensor, file_path, transforms, base_seed=0):
    """As :func:`transform_sequence`, seeded from ``file_path`` and ``base_seed``."""
    if transforms is None:
        return ev_tensor
    return _apply(ev_tensor, transforms, stable_seed(file_path, base_seed))
