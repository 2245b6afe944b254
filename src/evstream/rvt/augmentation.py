"""RVT's data augmentation: horizontal flip, zoom-in and zoom-out, on one sample.

Draws: ``U(a, b) = a + (b - a) u`` (``a`` itself when ``a == b``). Order of application:
flip, zoom-in, zoom-out (rotation has probability 0 in RVT's configs and is not implemented).

* **random mode** (:func:`draw_random`, per sample): flip with probability 0.5; zoom with
  probability 0.8, then zoom-in or zoom-out with weights 8 : 2; zoom-in factor ``U(1, 1.5)``,
  zoom-out factor ``U(1, 1.2)``;
* **stream mode** (:func:`draw_stream`, once per streaming chunk, applied to all its samples):
  flip 0.5, zoom-out only, with probability 0.5 and factor ``U(1, 1.2)``.

Operations on frames ``(L, C, H', W')`` and ``(n, 7)`` label tables:

* flip: frames reversed along the width, ``x <- W' - 1 - x - w`` (RVT's off-by-one kept);
* zoom-out ``z``: ``h = int(H'/z)``, ``w = int(W'/z)``, ``x0 = int(U(0, W' - w))``,
  ``y0 = int(U(0, H' - h))`` (drawn with the factor); frames resized to ``(h, w)`` with
  nearest-exact and pasted into zeros at ``(y0, x0)``; boxes scaled by ``1/z`` with RVT's rescale
  rule (:func:`evstream.rvt.samples.scale_labels`) and shifted by ``(x0, y0)``;
* zoom-in ``z`` (skipped for ``z = 1``): an ``int(H'/z) x int(W'/z)`` window placed so that it
  contains one box of the sample's most recent non-empty label frame, the box index drawn over
  ``[0, n - 1)`` (so with ``n >= 2`` boxes the last is never chosen: RVT's quirk, kept); frames
  cropped and resized back with nearest-exact; boxes clamped into the window, shifted, scaled by
  ``z``, flat ones dropped; a sample without labels is left as it is, with a warning. Where in the
  allowed range the window lies is drawn uniformly (RVT's exact placement draw is not part of the
  rules this module follows).

Randomness comes from a ``numpy.random.Generator`` the caller seeds (the loaders use
``(epoch_seed(seed, epoch), sample or chunk id)``), not torch's global RNG: a departure from RVT
that makes augmented epochs reproducible and independent of the worker count.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from evstream.rvt.samples import scale_labels


def uniform(rng: np.random.Generator, a: float, b: float) -> float:
    """RVT's ``U(a, b)``."""
    return a if a == b else a + (b - a) * float(rng.random())


@dataclass(frozen=True)
class AugmentParams:
    """What to apply: ``flip``; ``zoom_in`` factor (or None); ``zoom_out`` factor and its
    placement ``(x0, y0)`` (or None)."""

    flip: bool = False
    zoom_in: float | None = None
    zoom_out: float | None = None
    zoom_out_xy: tuple[int, int] = (0, 0)


def _zoom_out_params(rng, hw, low, high):
    z = uniform(rng, low, high)
    h, w = int(hw[0] / z), int(hw[1] / z)
    return z, (int(uniform(rng, 0, hw[1] - w)), int(uniform(rng, 0, hw[0] - h)))


def draw_random(rng: np.random.Generator, hw: tuple[int, int]) -> AugmentParams:
    """Random-mode parameters of one sample of frame size ``hw``."""
    flip = bool(rng.random() < 0.5)
    if not rng.random() < 0.8:
        return AugmentParams(flip)
    if rng.random() < 8 / 10:
        return AugmentParams(flip, zoom_in=uniform(rng, 1.0, 1.5))
    z, xy = _zoom_out_params(rng, hw, 1.0, 1.2)
    return AugmentParams(flip, zoom_out=z, zoom_out_xy=xy)


def draw_stream(rng: np.random.Generator, hw: tuple[int, int]) -> AugmentParams:
    """Stream-mode parameters of one chunk of frame size ``hw``."""
    flip = bool(rng.random() < 0.5)
    if not rng.random() < 0.5:
        return AugmentParams(flip)
    z, xy = _zoom_out_params(rng, hw, 1.0, 1.2)
    return AugmentParams(flip, zoom_out=z, zoom_out_xy=xy)


def _resize(frames: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(frames, size=hw, mode="nearest-exact")


def flip(frames: torch.Tensor, labels: list, width: int):
    """Horizontal flip of frames and label tables."""
    out = []
    for table in labels:
        if table is not None:
            table = table.copy()
            table[:, 1] = np.float32(width - 1) - table[:, 1] - table[:, 3]
        out.append(table)
    return frames.flip(-1), out


def zoom_out(frames: torch.Tensor, labels: list, factor: float, xy: tuple[int, int]):
    """RVT's zoom-out (module docstring)."""
    H, W = frames.shape[-2:]
    h, w = int(H / factor), int(W / factor)
    x0, y0 = xy
    canvas = torch.zeros_like(frames)
    canvas[..., y0:y0 + h, x0:x0 + w] = _resize(frames, (h, w))
    out = []
    for table in labels:
        if table is not None:
            table = scale_labels(table, 1.0 / factor, (H, W))
            table[:, 1] += np.float32(x0)
            table[:, 2] += np.float32(y0)
        out.append(table)
    return canvas, out


def zoom_in(frames: torch.Tensor, labels: list, factor: float, rng: np.random.Generator):
    """RVT's zoom-in (module docstring)."""
    if factor == 1:
        return frames, labels
    H, W = frames.shape[-2:]
    h, w = int(H / factor), int(W / factor)
    recent = next((t for t in reversed(labels) if t is not None and len(t)), None)
    if recent is None:
        warnings.warn("zoom-in skipped: the sample has no labels", RuntimeWarning, stacklevel=2)
        return frames, labels
    n = len(recent)
    i = int(rng.integers(0, n - 1)) if n >= 2 else 0
    bx, by, bw, bh = (float(v) for v in recent[i, 1:5])

    def place(start, size, window, total):
        lo, hi = max(0.0, start + size - window), min(start, float(total - window))
        if lo > hi:
            lo = hi = min(max(start, 0.0), float(total - window))
        return int(uniform(rng, lo, hi))

    x0, y0 = place(bx, bw, w, W), place(by, bh, h, H)
    crop = _resize(frames[..., y0:y0 + h, x0:x0 + w].contiguous(), (H, W))
    f32 = np.float32
    out = []
    for table in labels:
        if table is not None:
            t = table.copy()
            xa = np.clip(t[:, 1], f32(x0), f32(x0 + w)) - f32(x0)
            ya = np.clip(t[:, 2], f32(y0), f32(y0 + h)) - f32(y0)
            xb = np.clip(t[:, 1] + t[:, 3], f32(x0), f32(x0 + w)) - f32(x0)
            yb = np.clip(t[:, 2] + t[:, 4], f32(y0), f32(y0 + h)) - f32(y0)
            z = f32(factor)
            t[:, 1], t[:, 2], t[:, 3], t[:, 4] = xa * z, ya * z, (xb - xa) * z, (yb - ya) * z
            table = t[(t[:, 3] > 0) & (t[:, 4] > 0)]
        out.append(table)
    return crop, out


def apply(params: AugmentParams, frames: torch.Tensor, labels: list,
          rng: np.random.Generator):
    """Apply ``params`` to ``(frames, labels)``; returns new ones (frames ``(L, C, H', W')``)."""
    if params.flip:
        frames, labels = flip(frames, labels, frames.shape[-1])
    if params.zoom_in is not None:
        frames, labels = zoom_in(frames, labels, params.zoom_in, rng)
    if params.zoom_out is not None:
        frames, labels = zoom_out(frames, labels, params.zoom_out, params.zoom_out_xy)
    return frames, labels
