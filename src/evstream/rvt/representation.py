"""RVT's stacked histogram of one window, built with evstream's ``stacked_histogram`` kernel.

For the window's events ``m = 0 .. n-1`` in file order (repaired times ``t_m``):

* ``t_first = t_0`` and ``D = max(t_{n-1} - t_0, 1)`` (the first and last event *of the window*,
  not its bounds);
* time bin ``b_m = min(nbins - 1, floor(fl32(fl32(fl32(t_m - t_first) / fl32(D)) * nbins)))``:
  RVT's float32 arithmetic, reproduced exactly (for ``D <= 50 000`` it equals the integer rule
  ``floor(nbins (t_m - t_first) / D)``; COUNT windows can be longer, where float32 differs);
* channel ``p * nbins + b`` (OFF bins 0..9, then ON bins 0..9), pixel ``(y, x)``;
* counts: RVT's "fastmode" accumulates in uint8, so a cell **wraps modulo 256** before the
  cut-off: value ``min(count mod 256, cutoff)``; ``fastmode=False`` gives ``min(count, cutoff)``.

One numba pass (``_kernel_events``) computes each event's bin and keeps the events to count;
the counting itself is :func:`evstream.preprocessing.kernels.stacked_histogram` fed the bin
index as the time (``total_tbins_delta_t = nbins``, so its micro-bin of ``t = b`` is ``b``),
with no cut-off, into the uint8 output. (Feeding it ``t - t_first`` with
``total_tbins_delta_t = D`` instead would not match RVT: its float64 bin edges differ from the
exact rule for many D, e.g. D = 2 puts t = 1 in bin 4 instead of 5.) when no cell reached 255 those are the true counts and
the cut-off is applied; otherwise the window is counted again into a wide integer array and
wrapped modulo 256 before the cut-off (``_cap_counts`` applies the cut-off and spots a 255).

``ds2_nearest`` (gen4): RVT resizes the full-resolution histogram with nearest-exact at scale
1/2, so output pixel ``(i, j)`` copies input pixel ``(2i + 1, 2j + 1)``: only events at odd x and
odd y count, nothing is summed. Here the selection is done on the events (same result, a
quarter of the work); the time normalisation still uses every event of the window.

Events outside the sensor (RVT does not check them and corrupts its index arithmetic) are
dropped and counted (a ``RuntimeWarning`` names the count).
"""

from __future__ import annotations

import warnings

import numba
import numpy as np

from evstream.io.dtypes import EventCD
from evstream.preprocessing.kernels import stacked_histogram
from evstream.rvt.config import COUNT_CUTOFF, NBINS


def rvt_time_bins(t: np.ndarray, nbins: int = NBINS) -> np.ndarray:
    """RVT's float32 time bin of each event of one window (``t`` non-decreasing, int64)."""
    if t.size == 0:
        return np.zeros(0, np.int64)
    f32 = np.float32
    span = max(int(t[-1]) - int(t[0]), 1)
    norm = (t - t[0]).astype(f32) / f32(span)
    bins = np.floor(norm * f32(nbins)).astype(np.int64)
    return np.minimum(bins, nbins - 1)


@numba.njit(cache=True, nogil=True)
def _kernel_events(x, y, p, t, nbins, width, height, ds2, out):
    """Fill ``out`` (EventCD) with the events the histogram counts, ``t`` replaced by RVT's
    float32 time bin (the formula of :func:`rvt_time_bins`, computed in float32 the same way);
    with ``ds2`` only odd x and odd y, halved. Returns ``(events written, events outside the
    sensor)``."""
    t0 = t[0]
    span = max(t[t.size - 1] - t0, 1)
    fspan = np.float32(span)
    fbins = np.float32(nbins)
    n = 0
    outside = 0
    for i in range(t.size):
        xi = x[i]
        yi = y[i]
        if xi >= width or yi >= height:
            outside += 1
            continue
        if ds2:
            if (xi & 1) == 0 or (yi & 1) == 0:
                continue
            xi >>= 1
            yi >>= 1
        b = np.int64(np.floor((np.float32(t[i] - t0) / fspan) * fbins))
        out[n].x = xi
        out[n].y = yi
        out[n].p = p[i]
        out[n].t = min(b, nbins - 1)
        n += 1
    return n, outside


@numba.njit(cache=True, nogil=True)
def _cap_counts(flat: np.ndarray, cutoff: int) -> bool:
    """``flat = min(flat, cutoff)`` in place (uint8); True if a cell held 255 (saturated: the
    true count may be larger)."""
    saturated = False
    for i in range(flat.size):
        v = flat[i]
        if v == 255:
            saturated = True
        if v > cutoff:
            flat[i] = cutoff
    return saturated


def stacked_histogram_window(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray,
                             height: int, width: int, *, nbins: int = NBINS,
                             count_cutoff: int | None = COUNT_CUTOFF, fastmode: bool = True,
                             downsample_by_2: bool = False, out: np.ndarray | None = None,
                             path: str | None = None) -> np.ndarray:
    """One RVT frame, uint8 ``(2 nbins, H', W')`` (``H' = H // 2`` with ``downsample_by_2``).

    Args:
        x, y, p, t: the window's events in file order; ``p`` in {0, 1}; ``t`` repaired (int64).
        height, width: full sensor size.
        count_cutoff: RVT's cut-off, ``min(count_cutoff, 255)``; None means 255.
        fastmode: RVT's default uint8 accumulation (wraps modulo 256); False clamps instead.
        out: optional uint8 output to fill (e.g. a shared-memory buffer).
    """
    cutoff = 255 if count_cutoff is None else min(int(count_cutoff), 255)
    h, w = (height // 2, width // 2) if downsample_by_2 else (height, width)
    if out is None or not out.flags.c_contiguous:
        target, out = out, np.empty((2 * nbins, h, w), dtype=np.uint8)
        if target is not None:
            target[...] = stacked_histogram_window(x, y, p, t, height, width, nbins=nbins,
                                                   count_cutoff=count_cutoff, fastmode=fastmode,
                                                   downsample_by_2=downsample_by_2, out=out,
                                                   path=path)
            return target
    n = t.size
    if n == 0:
        out[...] = 0
        return out
    events = np.empty(n, dtype=EventCD)
    kept, outside = _kernel_events(x, y, p, t, nbins, width, height, downsample_by_2, events)
    events = events[:kept]
    if outside:
        warnings.warn(f"{path or 'events'}: {outside} event(s) outside the {width}x{height} "
                      f"sensor dropped from an RVT frame", RuntimeWarning, stacklevel=2)
    counts = out.reshape((1,) + out.shape)
    stacked_histogram(events, counts, nbins, count_cutoff=None)      # uint8, saturates at 255
    if _cap_counts(out.reshape(-1), cutoff):
        # a cell may hold more than 254 events: count them exactly, then wrap as RVT does
        wide = np.empty(counts.shape, dtype=np.uint16 if n < 65535 else np.uint32)
        stacked_histogram(events, wide, nbins, count_cutoff=None)
        values = wide[0] & 255 if fastmode else wide[0]
        np.minimum(values, cutoff, out=values)
        out[...] = values
    return out
