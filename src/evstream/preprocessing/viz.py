"""Visualisations of ``[C, H, W]`` tensors (one time bin) as uint8 ``H x W x 3`` RGB images.

Colours (those of Prophesee's viz): background ``BG_COLOR`` (30, 37, 52), ON / positive
``POS_COLOR`` (216, 223, 236), OFF / negative ``NEG_COLOR`` (64, 126, 201).

ON and OFF get the same colours in every function here: ON events (histogram channel 1, positive
diff) are drawn with ``POS_COLOR`` and OFF events (channel 0, negative diff) with ``NEG_COLOR``.
The original's ``viz_histo_binarized`` paints channel 0 (OFF) with its positive colour and
channel 1 (ON) with its negative one, the reverse of its ``viz_diff_binarized`` (docs/compatibility.md);
evstream does not reproduce that swap. Where both polarities hit a pixel, ON wins (the
original also lets channel 1 win).

Every function returns RGB (not OpenCV's BGR), including the colour-mapped ones, and accepts numpy
arrays or torch tensors (copied to the CPU). ``viz_diff`` and ``viz_histo`` return a grey image
replicated on 3 channels (the original returns a single ``H x W`` plane; use ``[..., 0]``).
"""

from __future__ import annotations

import cv2
import numpy as np

from evstream.errors import ArgumentError
from evstream.utils.arrays import as_numpy

BG_COLOR = np.array([30, 37, 52], np.uint8)
POS_COLOR = np.array([216, 223, 236], np.uint8)
NEG_COLOR = np.array([64, 126, 201], np.uint8)


def _planes(im) -> np.ndarray:
    """``[C, H, W]`` view of an input given as ``[C, H, W]`` or ``[H, W]``."""
    im = as_numpy(im)
    if im.ndim == 2:
        im = im[None]
    if im.ndim != 3:
        raise ArgumentError(f"expected a [C, H, W] or [H, W] array, got shape {im.shape}")
    return im


def gray_to_rgb(im) -> np.ndarray:
    """``H x W`` uint8 -> ``H x W x 3`` (the plane replicated)."""
    im = as_numpy(im)
    return np.repeat(im[..., None], 3, axis=2)


def filter_outliers(x, num_std=2):
    """``x`` clipped to ``mean +- num_std * std``."""
    x = as_numpy(x).astype(np.float64)
    m, s = x.mean(), x.std()
    return np.clip(x, m - num_std * s, m + num_std * s)


def normalize(x) -> np.ndarray:
    """Min-max normalisation to ``[0, 255]`` as uint8 (``(x - lo) / (hi - lo + 1e-6) * 255``)."""
    x = as_numpy(x).astype(np.float64)
    lo, hi = x.min(), x.max()
    return ((x - lo) / (hi - lo + 1e-6) * 255).astype(np.uint8)


def _gray(im) -> np.ndarray:
    """One plane -> uint8 H x W: outliers clipped at 3 std, min-max normalised; 127 if all zero."""
    im = as_numpy(im).astype(np.float64)
    if not np.any(im):
        return np.full(im.shape, 127, np.uint8)
    return normalize(filter_outliers(im, num_std=3))


def viz_diff(im) -> np.ndarray:
    """Grey rendering of a signed plane (``[H, W]`` or ``[1, H, W]``): clipped to mean +- 3 std,
    min-max normalised; an all-zero plane is uniform 127. Returned as ``H x W x 3``."""
    return gray_to_rgb(_gray(_planes(im)[0]))


def viz_histo(im) -> np.ndarray:
    """Grey rendering of ``ON - OFF`` of a 2-channel histogram (see :func:`viz_diff`)."""
    im = _planes(im)
    return viz_diff(im[1].astype(np.float64) - im[0])


def _paint(off_mask, on_mask) -> np.ndarray:
    img = np.empty(off_mask.shape + (3,), np.uint8)
    img[...] = BG_COLOR
    img[off_mask] = NEG_COLOR
    img[on_mask] = POS_COLOR
    return img


def viz_histo_binarized(im) -> np.ndarray:
    """Background; channel 0 (OFF) > 0 -> NEG_COLOR; channel 1 (ON) > 0 -> POS_COLOR (wins)."""
    im = _planes(im)
    return _paint(im[0] > 0, im[1] > 0)


def viz_diff_binarized(im) -> np.ndarray:
    """Background; ``< 0`` (OFF) -> NEG_COLOR; ``> 0`` (ON) -> POS_COLOR."""
    im = _planes(im)[0]
    return _paint(im < 0, im > 0)


def viz_event_cube_rgb(im, split_polarity=True) -> np.ndarray:
    """The first three micro-bins as the R, G and B planes: with ``split_polarity`` channels
    ``(0, 1)``, ``(2, 3)``, ``(4, 5)`` each rendered as :func:`viz_histo`; otherwise channels 0,
    1, 2 each rendered as :func:`viz_diff`. Missing micro-bins give a 127 plane."""
    im = _planes(im)
    planes = []
    for i in range(3):
        if split_polarity:
            pair = im[2 * i:2 * i + 2]
            plane = pair[1].astype(np.float64) - pair[0] if len(pair) == 2 else np.zeros(im.shape[1:])
        else:
            plane = im[i] if i < len(im) else np.zeros(im.shape[1:])
        planes.append(_gray(plane))
    return np.ascontiguousarray(np.stack(planes, axis=-1))


def viz_timesurface(im) -> np.ndarray:
    """Maximum over the channels (for ``[C, H, W]``), times 255, OpenCV JET colour map, as RGB."""
    im = as_numpy(im).astype(np.float64)
    if im.ndim == 3:
        im = im.max(axis=0)
    gray = (np.clip(im, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def viz_multichannel_timesurface(t, blend=False) -> np.ndarray:
    """Multi-channel time surface -> :func:`viz_event_cube_rgb` (``blend`` is accepted and unused,
    as in the original)."""
    return viz_event_cube_rgb(t)


def viz_stacked_histogram(im) -> np.ndarray:
    """Stacked histogram ``[2 * nb, H, W]`` (OFF bins then ON bins): counts summed per polarity,
    then :func:`viz_histo_binarized`."""
    im = _planes(im)
    nb = len(im) // 2
    return _paint(im[:nb].sum(axis=0) > 0, im[nb:].sum(axis=0) > 0)


def viz_voxel_grid(im) -> np.ndarray:
    """Voxel grid ``[C, H, W]``: summed over the channels, then :func:`viz_diff_binarized`."""
    return viz_diff_binarized(_planes(im).astype(np.float64).sum(axis=0))
