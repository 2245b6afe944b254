"""Slow, obviously-correct references of the event-to-tensor functions (pure Python/numpy).

Each one walks the events one by one in a Python loop and applies the documented rule literally
(reference §14 of metavision_api.md and the evstream docstrings), with float64 arithmetic and a
numpy store per event (which rounds to the output dtype, as the original's numba code does).
They return ``(array, dropped)`` on a copy of the input array. Test sizes are kept small.
"""

from __future__ import annotations

import math

import numpy as np

from evstream.io.dtypes import EventCD


def make_events(rng, n, width, height, total, *, sort=True, out_of_range=0.0, p_values=(0, 1)):
    """Random EventCD events in a ``width x height`` sensor and ``[0, total)``; a fraction
    ``out_of_range`` of them is pushed outside the geometry or the window."""
    ev = np.zeros(n, EventCD)
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.choice(p_values, n)
    ev["t"] = rng.integers(0, int(math.ceil(total)), n)
    if out_of_range:
        bad = np.flatnonzero(rng.random(n) < out_of_range)
        kind = rng.integers(0, 4, bad.size)
        ev["x"][bad[kind == 0]] = rng.integers(width, width + 50, (kind == 0).sum())
        ev["y"][bad[kind == 1]] = rng.integers(height, height + 50, (kind == 1).sum())
        ev["t"][bad[kind == 2]] = -rng.integers(1, 1000, (kind == 2).sum())
        ev["t"][bad[kind == 3]] = int(math.ceil(total)) + rng.integers(0, 1000, (kind == 3).sum())
    if sort:
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


def _inside(e, width_full, height_full, total):
    return int(e["x"]) < width_full and int(e["y"]) < height_full and 0 <= int(e["t"]) < total


def _bin(t, total, nbins):
    return min(int(float(t) // (total / nbins)), nbins - 1)


def _loop(events, out, total, k, reset, body):
    out = out.copy()
    if reset:
        out[...] = 0
    _, _, h, w = out.shape
    dropped = 0
    for e in events:
        if not _inside(e, w << k, h << k, total):
            dropped += 1
            continue
        body(out, int(e["x"]) >> k, int(e["y"]) >> k, int(e["p"]) > 0, int(e["t"]))
    return out, dropped


def _inc(max_incr, k):
    return 1.0 if max_incr is None else 1.0 / (max_incr * 4 ** k)


def ref_histo(events, out, total, k=0, reset=True, max_incr_per_pixel=5):
    inc = _inc(max_incr_per_pixel, k)
    n_t = out.shape[0]

    def body(o, x, y, on, t):
        b, c = _bin(t, total, n_t), int(on)
        v = float(o[b, c, y, x]) + inc
        o[b, c, y, x] = min(v, 1.0)
    return _loop(events, out, total, k, reset, body)


def ref_diff(events, out, total, k=0, reset=True, max_incr_per_pixel=5):
    inc = _inc(max_incr_per_pixel, k)
    n_t = out.shape[0]

    def body(o, x, y, on, t):
        b = _bin(t, total, n_t)
        v = float(o[b, 0, y, x])
        o[b, 0, y, x] = min(v + inc, 1.0) if on else max(v - inc, -1.0)
    return _loop(events, out, total, k, reset, body)


def ref_counts(events, shape, total, *, signed, lo, hi_off, hi_on):
    """Clamped counts at full resolution (int64)."""
    counts = np.zeros(shape, np.int64)
    n_t = shape[0]

    def body(o, x, y, on, t):
        b = _bin(t, total, n_t)
        if signed:
            o[b, 0, y, x] = min(o[b, 0, y, x] + 1, hi_off) if on else max(o[b, 0, y, x] - 1, lo)
        else:
            c = int(on)
            o[b, c, y, x] = min(o[b, c, y, x] + 1, hi_on if on else hi_off)
    return _loop(events, counts, total, 0, False, body)


def _pool(counts, k):
    if k == 0:
        return counts.astype(np.float64)
    s = 1 << k
    n_t, n_c, h, w = counts.shape
    out = np.zeros((n_t, n_c, h // s, w // s))
    for i in range(h // s):
        for j in range(w // s):
            out[:, :, i, j] = counts[:, :, i * s:(i + 1) * s, j * s:(j + 1) * s].sum(axis=(2, 3)) / (s * s)
    return out


def ref_quantized(events, out, total, k, reset, *, signed, nb, tb=None, normalization=False):
    if signed:
        half = 1 << (nb - 1)
        lo, hi_off, hi_on, norm = -half, half - 1, half - 1, half
    else:
        lo, hi_off, hi_on = 0, (1 << nb) - 1, (1 << (tb - nb)) - 1
        norm = max(hi_off, hi_on)
    n_t, n_c, h, w = out.shape
    counts, dropped = ref_counts(events, (n_t, n_c, h << k, w << k), total, signed=signed, lo=lo,
                                 hi_off=hi_off, hi_on=hi_on)
    values = _pool(counts, k)
    if normalization:
        values = values / norm
    out = out.copy()
    if reset:
        out[...] = values
    else:
        out[...] = out + values
    return out, dropped


def ref_event_cube(events, out, total, k=0, reset=True, split_polarity=True, max_incr_per_pixel=5):
    inc = _inc(max_incr_per_pixel, k)
    n_t, n_c = out.shape[:2]
    cpb = n_c // 2 if split_polarity else n_c
    nbins = n_t * cpb

    def body(o, x, y, on, t):
        s = t * nbins / total - 0.5
        l = math.floor(s)
        wl = max(0.0, 1.0 - abs(l - s))
        for m, wgt in ((l, wl), (l + 1, 1.0 - wl)):
            if not 0 <= m < nbins:
                continue
            d = wgt * inc
            if split_polarity:
                c = 2 * (m % cpb) + int(on)
            else:
                c = m % cpb
                d = d if on else -d
            v = float(o[m // cpb, c, y, x]) + d
            o[m // cpb, c, y, x] = min(max(v, -1.0), 1.0)
    return _loop(events, out, total, k, reset, body)


def ref_timesurface(events, out, total, k=0, reset=True, normed=True):
    """Also multi_channel_timesurface: ``T * C / 2`` micro-bins, polarity pairs."""
    n_t, n_c = out.shape[:2]
    cpb = n_c // 2
    nbins = n_t * cpb
    dt = total / nbins

    def body(o, x, y, on, t):
        m = _bin(t, total, nbins)
        value = t - m * dt
        if 0 <= value < dt:
            o[m // cpb, 2 * (m % cpb) + int(on), y, x] = value / dt if normed else value
    return _loop(events, out, total, k, reset, body)


def ref_stacked_histogram(events, out, total, k=0, reset=True, count_cutoff=10):
    n_t, n_c = out.shape[:2]
    nb = n_c // 2
    cap = np.iinfo(out.dtype).max if out.dtype.kind in "iu" else 2 ** 24
    if count_cutoff is not None:
        cap = min(cap, count_cutoff)

    def body(o, x, y, on, t):
        m = _bin(t, total, n_t * nb)
        idx = (m // nb, int(on) * nb + m % nb, y, x)
        if o[idx] < cap:
            o[idx] += 1
    return _loop(events, out, total, k, reset, body)


def ref_voxel_grid(events, out, total, k=0, reset=True):
    n_t, n_c = out.shape[:2]
    dt = total / n_t

    def body(o, x, y, on, t):
        b = _bin(t, total, n_t)
        ts = max((t - b * dt) * (n_c - 1) / dt, 0.0)
        sign = 1.0 if on else -1.0
        for c in range(n_c):
            wgt = max(0.0, 1.0 - abs(c - ts))
            if wgt:
                o[b, c, y, x] = float(o[b, c, y, x]) + sign * wgt
    return _loop(events, out, total, k, reset, body)
