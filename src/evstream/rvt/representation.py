"""RVT's stacked histogram of one window.

For the window's events ``m = 0 .. n-1`` in file order (repaired times ``t_m``):

* ``t_first = t_0`` and ``D = max(t_{n-1} - t_0, 1)`` (the first and last event *of the window*,
  not its bounds);
* time bin ``b_m = min(nbins - 1, floor(fl32(fl32(fl32(t_m - t_first) / fl32(D)) * nbins)))``:
  RVT's float32 arithmetic, reproduced exactly (for ``D <= 50 000`` it equals the integer rule
  ``floor(nbins (t_m - t_first) / D)``; COUNT windows can be longer, where float32 differs);
* channel ``p * nbins + b`` (OFF bins 0..9, then ON bins 0..9), pixel ``(y, x)``;
* counts: RVT's "fastmode" accumulates in uint8, so a cell **wraps modulo 256** before the
  cut-off: value ``min(count mod 256, cutoff)``; ``fastmode=False`` gives ``min(count, cutoff)``.

``_count_window`` bins and counts the events straight into the uint8 frame: in fastmode a cell
is incremented modulo 256 (uint8 arithmetic, exactly RVT's accumulation) and the cut-off is
applied to the touched cells afterwards; otherwise a cell stops at the cut-off.
(evstream's general ``stacked_histogram`` kernel has fixed float64 bin edges and saturating
counts, both of which differ from RVT: e.g. for D = 2 its edges put t = 1 in bin 4, RVT in 5.)

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

from evstream.errors import ArgumentError
from evstream.io.dtypes import EventCD
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


@numba.njit(cache=True, nogil=True, inline="always")
def _time_bin(dt, fspan, fbins, nbins):
    """RVT's float32 time bin of an event ``dt`` µs after the window's first event."""
    return min(np.int64(np.floor((np.float32(dt) / fspan) * fbins)), nbins - 1)


@numba.njit(cache=True, nogil=True)
def _count_window(words, nbins, width, height, ds2, wrap, cutoff, cells, flat):
    """Count one window into the uint8 frame ``flat`` (``2 nbins`` planes of ``H' x W'`` cells,
    written entirely: the planes are zeroed here).

    ``words`` is the window's EventCD array (non-empty) viewed as ``int64[n, 2]``: column 0
    holds ``x | y << 16 | p << 32`` (bytes 6-7 are padding, ignored), column 1 ``t``.

    The times are sorted and RVT's float32 bin is a non-decreasing function of the time, so
    the events of each bin are a contiguous range, found by binary search (the formula is
    evaluated at the probes only). Per bin, a branch-free pass writes the cell of every
    counted event into ``cells`` (polarity, ds2's odd-pixel selection, the sensor check), the
    bin's two planes (OFF and ON) are zeroed just before counting into them (so they are
    counted in cache), and the cells are incremented: ``wrap`` counts modulo 256 (uint8), then
    caps the touched cells at ``cutoff``; otherwise a cell stops at ``cutoff``. Returns (the
    events outside the sensor, the events whose time is below the previous one's: then the
    bins are not RVT's and the caller raises)."""
    n = words.shape[0]
    t0 = words[0, 1]
    fspan = np.float32(max(words[n - 1, 1] - t0, 1))
    fbins = np.float32(nbins)
    shift = 1 if ds2 else 0
    out_w = width >> shift
    plane = (height >> shift) * out_w
    inside = 0
    unsorted = 0
    previous = t0
    start = 0
    for b in range(nbins):
        stop = n
        if b < nbins - 1:        # first event whose bin is > b
            lo, hi = start, n
            while lo < hi:
                mid = (lo + hi) // 2
                if _time_bin(words[mid, 1] - t0, fspan, fbins, nbins) <= b:
                    lo = mid + 1
                else:
                    hi = mid
            stop = lo
        kept = 0
        for i in range(start, stop):
            v = words[i, 0]
            x = v & 0xFFFF
            y = (v >> 16) & 0xFFFF
            ok = (x < width) & (y < height)
            inside += ok
            if ds2:
                ok &= (x & y & 1) == 1
            on = np.int16((v >> 32) & 0xFFFF) > 0
            cells[kept] = (b + nbins * on) * plane + (y >> shift) * out_w + (x >> shift)
            kept += ok
            unsorted += words[i, 1] < previous
            previous = words[i, 1]
        start = stop
        flat[b * plane:(b + 1) * plane] = 0
        flat[(b + nbins) * plane:(b + nbins + 1) * plane] = 0
        for j in range(kept):
            c = cells[j]
            v = flat[c]
            if wrap:
                flat[c] = np.uint8((v + 1) & 255)
            elif v < cutoff:
                flat[c] = v + 1
        if wrap:
            for j in range(kept):
                c = cells[j]
                if flat[c] > cutoff:
                    flat[c] = cutoff
    return n - inside, unsorted


def stacked_histogram_window(events: np.ndarray, height: int, width: int, *, nbins: int = NBINS,
                             count_cutoff: int | None = COUNT_CUTOFF, fastmode: bool = True,
                             downsample_by_2: bool = False, out: np.ndarray | None = None,
                             path: str | None = None) -> np.ndarray:
    """One RVT frame, uint8 ``(2 nbins, H', W')`` (``H' = H // 2`` with ``downsample_by_2``).

    Args:
        events: the window's events (EventCD) in file order; ``p`` in {0, 1}; ``t`` repaired.
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
            target[...] = stacked_histogram_window(events, height, width, nbins=nbins,
                                                   count_cutoff=count_cutoff, fastmode=fastmode,
                                                   downsample_by_2=downsample_by_2, out=out,
                                                   path=path)
            return target
    if events.dtype != EventCD:
        raise ArgumentError(f"an RVT frame is counted from EventCD events, not {events.dtype}",
                            path)
    if len(events) == 0:
        out.fill(0)
        return out
    words = np.ascontiguousarray(events).view(np.int64).reshape(-1, 2)
    cells = np.empty(len(events), np.int64)       # room for one bin (at most every event)
    outside, unsorted = _count_window(words, nbins, width, height, downsample_by_2, fastmode,
                                      cutoff, cells, out.reshape(-1))
    if unsorted:
        raise ArgumentError(f"{unsorted} event(s) of an RVT window earlier than the event "
                            f"before them: the window's times must be repaired "
                            f"(non-decreasing)", path)
    if outside:
        warnings.warn(f"{path or 'events'}: {outside} event(s) outside the {width}x{height} "
                      f"sensor dropped from an RVT frame", RuntimeWarning, stacklevel=2)
    return out
