"""Numba kernels: events (four plain field arrays) -> ``[T, C, H, W]`` tensors.

Every kernel takes the EventCD fields ``x, y, p, t`` as 1-D arrays (strided views of the
structured array are fine), the output array (histo, diff, stacked_histogram, event_cube and
voxel_grid take it flattened: a 1-D view of the C-contiguous ``[T, C, H, W]`` output, or of a
contiguous copy that the entry point copies back when the caller's output is strided) and plain
scalars prepared by :mod:`evstream.preprocessing.validation`, and returns the number of events it skipped because
they were outside the window (``t < 0`` or ``t >= t_limit``) or outside the sensor
(``x >= W << shift`` or ``y >= H << shift``). Every event is checked, so no input can make a kernel
write outside its output array; the checks are integer compares that the branch predictor
learns, so they cost almost nothing.

Time bins: ``edges`` are the integer bin edges built by ``validation.time_edges`` (``edges[0]`` and
``edges[-1]`` are the int64 extremes); an event at time ``t`` is in bin ``b`` iff
``edges[b] <= t < edges[b + 1]``. :func:`_locate` first tries the previous event's bin (one
compare pair on sorted input), then guesses ``t * inv`` and walks, so each event is binned by its
own timestamp whatever the order of the array.

Polarity: ``p > 0`` is ON (channel 1, +1), anything else is OFF (channel 0, -1), so both the
0/1 and the -1/+1 conventions work.

Arithmetic follows the original's numba code: a float output cell is read, the increment is
added in float64, the result is clamped in float64 and stored (rounded) back, one event at a time
in array order. The two-pass kernels (see :data:`BLOCK_EVENTS`) only change when the cells are
fetched, not that order nor the arithmetic. This module imports numba and numpy only (no torch).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from evstream.errors import KernelArgumentError
from evstream.preprocessing import validation as _v


@intrinsic
def _prefetch(typingctx, arr, i):
    """Cache hint (LLVM ``prefetch`` for writing) for ``arr[i]`` of a 1-D array. A hint never
    faults and never changes memory; callers still only pass in-range indices."""
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, args[1], signature.args[1], types.intp)]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.prefetch", fnty=ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return sig, codegen


#: Events per block of the two-pass kernels (histo, diff, stacked_histogram, event_cube,
#: voxel_grid). Random read-modify-writes into a tensor larger than the caches are latency-bound,
#: and the out-of-order window only overlaps the misses of a few events. So pass 1 turns a block of
#: events into entries (flat cell index, plus the increment where it varies) and prefetches every
#: cell; pass 2 applies the entries in event order, when the cells of the block are already in
#: flight or in cache (2-4x on 1280x720 outputs). At most 2 entries per event: the buffers
#: (8-16 bytes per entry) stay in L1/L2. 128 to 1024 measured the same.
BLOCK_EVENTS = 256


@njit(cache=True, inline="always")
def _apply_clamped(flat, idx, inc, n):
    """``flat[idx[j]] = clamp(flat[idx[j]] + inc[j], -1, 1)`` for ``j < n``, in order (float64
    sum, rounded to the output dtype at the store). Every ``idx[j] < flat.size`` (pass 1 only
    builds in-range indices); they are unsigned, so numba adds no negative-index wraparound."""
    for j in range(n):
        c = idx[j]
        v = flat[c] + inc[j]
        if v > 1.0:
            v = 1.0
        elif v < -1.0:
            v = -1.0
        flat[c] = v


@njit(cache=True, inline="always")
def _apply_sum(flat, idx, inc, n):
    """``flat[idx[j]] = flat[idx[j]] + inc[j]`` for ``j < n``, in order (indices as in
    :func:`_apply_clamped`)."""
    for j in range(n):
        c = idx[j]
        flat[c] = flat[c] + inc[j]


@njit(cache=True, inline="always")
def _locate(t, edges, b, inv):
    """Bin of ``t`` given the previous bin ``b`` (see the module docstring)."""
    if edges[b] <= t and t < edges[b + 1]:
        return b
    last = edges.size - 2
    g = int(t * inv)
    if g > last:
        g = last
    if g < 0:
        g = 0
    while t < edges[g]:
        g -= 1
    while t >= edges[g + 1]:
        g += 1
    return g


@njit(cache=True, inline="always")
def _outside(xi, yi, ti, width_full, height_full, t_limit):
    return xi >= width_full or yi >= height_full or ti < 0 or ti >= t_limit


@njit(cache=True)
def _micro_bin_tables(nbins, per_bin, stride):
    """Time bin and first channel of each micro-bin ``m``: ``m // per_bin`` and
    ``stride * (m % per_bin)`` (tables, so the hot loops do no integer division)."""
    tb_of = np.empty(nbins, np.int64)
    c_of = np.empty(nbins, np.int64)
    for m in range(nbins):
        tb_of[m] = m // per_bin
        c_of[m] = stride * (m % per_bin)
    return tb_of, c_of


@njit(cache=True)
def accumulate_kernel(x, y, p, t, flat, n_t, height, width, edges, inv, shift, inc, t_limit, signed):
    """histo (``signed`` False) and diff (``signed`` True) into ``flat``, the C-contiguous
    ``[T, C, H, W]`` output flattened (C = 2 for histo, 1 for diff).

    histo: cell ``[bin, pol, y >> shift, x >> shift]`` becomes ``v + inc`` if that is ``<= 1``,
    else 1. diff: cell ``[bin, 0, ...]`` becomes ``min(v + inc, 1)`` for ON and
    ``max(v - inc, -1)`` for OFF. Two passes per block of events (see :data:`BLOCK_EVENTS`);
    cells are updated in event order. diff keeps the polarity in bit 0 of its entries.
    """
    width_full = width << shift
    height_full = height << shift
    plane = height * width
    idx = np.empty(BLOCK_EVENTS, np.uint64)
    dropped = 0
    n = 0
    b = 0
    for i in range(t.size):
        xi = x[i]
        yi = y[i]
        ti = t[i]
        if _outside(xi, yi, ti, width_full, height_full, t_limit):
            dropped += 1
            continue
        # from here 0 <= xi >> shift < width, 0 <= yi >> shift < height, and 0 <= b < n_t
        b = _locate(ti, edges, b, inv)
        on = p[i] > 0
        cell = (yi >> shift) * width + (xi >> shift)
        if signed:
            c = np.uint64(b * plane + cell)
            _prefetch(flat, c)
            idx[n] = (c << np.uint64(1)) | np.uint64(1 if on else 0)
        else:
            c = np.uint64((2 * b + (1 if on else 0)) * plane + cell)
            _prefetch(flat, c)
            idx[n] = c
        n += 1
        if n == BLOCK_EVENTS:
            _apply_accumulate(flat, idx, n, inc, signed)
            n = 0
    _apply_accumulate(flat, idx, n, inc, signed)
    return dropped


@njit(cache=True, inline="always")
def _apply_accumulate(flat, idx, n, inc, signed):
    """Pass 2 of :func:`accumulate_kernel`: in-range cell indices (pass 1 builds no other).
    diff computes both polarities' results and selects one (no branch on the polarity, which is
    unpredictable; same values as the two branches)."""
    for j in range(n):
        e = idx[j]
        if signed:
            c = e >> np.uint64(1)
            f = flat[c]
            vp = f + inc
            vm = f - inc
            rp = vp if vp <= 1.0 else 1.0
            rm = vm if vm >= -1.0 else -1.0
            flat[c] = rp if (e & np.uint64(1)) else rm
        else:
            v = flat[e] + inc
            flat[e] = v if v <= 1.0 else 1.0


@njit(cache=True)
def quantized_kernel(x, y, p, t, out, edges, inv, shift, t_limit, signed, lo, hi_off, hi_on):
    """Clamped integer counts: diff_quantized (``signed``: channel 0, ON +1 / OFF -1, clamped to
    ``[lo, hi_off]``) and histo_quantized (channel = polarity, +1, clamped to ``hi_off`` for OFF
    and ``hi_on`` for ON)."""
    _, _, height, width = out.shape
    width_full = width << shift
    height_full = height << shift
    dropped = 0
    b = 0
    for i in range(t.size):
        xi = x[i]
        yi = y[i]
        ti = t[i]
        if _outside(xi, yi, ti, width_full, height_full, t_limit):
            dropped += 1
            continue
        b = _locate(ti, edges, b, inv)
        xo = xi >> shift
        yo = yi >> shift
        on = p[i] > 0
        if signed:
            if on:
                if out[b, 0, yo, xo] < hi_off:
                    out[b, 0, yo, xo] += 1
            elif out[b, 0, yo, xo] > lo:
                out[b, 0, yo, xo] -= 1
        else:
            c = 1 if on else 0
            hi = hi_on if on else hi_off
            if out[b, c, yo, xo] < hi:
                out[b, c, yo, xo] += 1
    return dropped


@njit(cache=True)
def event_cube_kernel(x, y, p, t, flat, height, width, nbins, total, shift, inc, t_limit, split_polarity):
    """Linear interpolation in time over ``nbins`` micro-bins (``T * C / 2`` with
    ``split_polarity``, else ``T * C``), micro-bins T-major: micro-bin ``m`` is
    ``out[m // cpb, 2 * (m % cpb) + pol]`` (split) or ``out[m // cpb, m % cpb]`` (not split),
    i.e. plane ``2 * m + pol`` or ``m`` of ``flat``, the C-contiguous ``[T, C, H, W]`` output
    flattened.

    ``s = t * nbins / total - 0.5``, ``l = floor(s)``, ``wl = max(0, 1 - |l - s|)``,
    ``wr = 1 - wl``; ``wl * inc`` goes to micro-bin ``l`` (if ``0 <= l``) and ``wr * inc`` to
    ``l + 1`` (if ``< nbins``), negated for OFF events when not split, clamped to ``[-1, 1]``.
    Cells are updated in event order (``l`` before ``l + 1``), one event at a time, two passes
    per block of events (see :data:`BLOCK_EVENTS`).
    """
    width_full = width << shift
    height_full = height << shift
    plane = height * width
    m_stride = 2 * plane if split_polarity else plane      # flat offset of micro-bin m + 1 vs m
    idx = np.empty(2 * BLOCK_EVENTS, np.uint64)
    dinc = np.empty(2 * BLOCK_EVENTS, np.float64)
    dropped = 0
    n = 0
    t_prev = np.int64(-1)  # in-range times are >= 0: no event matches before the first computation
    l = 0
    wl = 0.0
    wr = 0.0
    for i in range(t.size):
        xi = x[i]
        yi = y[i]
        ti = t[i]
        if _outside(xi, yi, ti, width_full, height_full, t_limit):
            dropped += 1
            continue
        # from here 0 <= xi >> shift < width and 0 <= yi >> shift < height
        if ti != t_prev:  # the weights depend on t only: runs of equal timestamps reuse them
            s = ti * nbins / total - 0.5
            fl = math.floor(s)
            l = int(fl)
            wl = 1.0 - abs(fl - s)
            if wl < 0.0:
                wl = 0.0
            wr = 1.0 - wl
            t_prev = ti
        on = p[i] > 0
        base = (yi >> shift) * width + (xi >> shift)
        dl = wl * inc
        dr = wr * inc
        if split_polarity:
            if on:
                base += plane
        elif not on:
            dl = -dl
            dr = -dr
        # micro-bins are checked against [0, nbins): base + m * m_stride < flat.size
        if l >= 0 and l < nbins:
            c = np.uint64(base + l * m_stride)
            _prefetch(flat, c)
            idx[n] = c
            dinc[n] = dl
            n += 1
        if l + 1 >= 0 and l + 1 < nbins:
            c = np.uint64(base + (l + 1) * m_stride)
            _prefetch(flat, c)
            idx[n] = c
            dinc[n] = dr
            n += 1
        if n > 2 * BLOCK_EVENTS - 2:
            _apply_clamped(flat, idx, dinc, n)
            n = 0
    _apply_clamped(flat, idx, dinc, n)
    return dropped


@njit(cache=True)
def timesurface_kernel(x, y, p, t, out, edges, inv, dt, shift, t_limit, normed):
    """Time surfaces over ``T * C / 2`` micro-bins (T-major, polarity pairs): micro-bin ``m`` of
    polarity ``pol`` is ``out[m // (C / 2), 2 * (m % (C / 2)) + pol]``. The cell gets
    ``value = t - m * dt`` (divided by ``dt`` when ``normed``) if ``0 <= value < dt``; the last
    event of the array wins."""
    n_t, n_c, height, width = out.shape
    width_full = width << shift
    height_full = height << shift
    cpb = n_c // 2
    nbins = n_t * cpb
    tb_of, c_of = _micro_bin_tables(nbins, cpb, 2)
    dropped = 0
    b = 0
    for i in range(t.size):
        xi = x[i]
        yi = y[i]
        ti = t[i]
        if _outside(xi, yi, ti, width_full, height_full, t_limit):
            dropped += 1
            continue
        b = _locate(ti, edges, b, inv)
        value = ti - b * dt
        if value < 0.0 or value >= dt:
            continue
        c = c_of[b] + (1 if p[i] > 0 else 0)
        out[tb_of[b], c, yi >> shift, xi >> shift] = value / dt if normed else value
    return dropped


@njit(cache=True)
def stacked_histogram_kernel(x, y, p, t, flat, n_c, height, width, edges, inv, shift, t_limit, cutoff):
    """Counts over ``T * C / 2`` micro-bins, polarity-major inside each time bin (RVT's layout):
    micro-bin ``m`` of polarity ``pol`` is ``out[m // nb, pol * nb + m % nb]`` with ``nb = C / 2``;
    a cell stops at ``cutoff``. ``flat`` is the C-contiguous ``[T, C, H, W]`` output flattened;
    two passes per block of events (see :data:`BLOCK_EVENTS`), cells updated in event order."""
    width_full = width << shift
    height_full = height << shift
    plane = height * width
    nb = n_c // 2
    nbins = edges.size - 1
    tb_of, c_of = _micro_bin_tables(nbins, nb, 1)
    off_of = np.empty(nbins, np.int64)     # flat offset of micro-bin m's OFF plane
    for m in range(nbins):
        off_of[m] = (tb_of[m] * n_c + c_of[m]) * plane
    on_off = nb * plane                    # ON plane of a micro-bin minus its OFF plane
    idx = np.empty(BLOCK_EVENTS, np.uint64)
    dropped = 0
    n = 0
    b = 0
    for i in range(t.size):
        xi = x[i]
        yi = y[i]
        ti = t[i]
        if _outside(xi, yi, ti, width_full, height_full, t_limit):
            dropped += 1
            continue
        # from here 0 <= xi >> shift < width, 0 <= yi >> shift < height, and 0 <= b < nbins
        b = _locate(ti, edges, b, inv)
        c = off_of[b] + (yi >> shift) * width + (xi >> shift)
        if p[i] > 0:
            c += on_off
        c = np.uint64(c)
        _prefetch(flat, c)
        idx[n] = c
        n += 1
        if n == BLOCK_EVENTS:
            _apply_capped(flat, idx, n, cutoff)
            n = 0
    _apply_capped(flat, idx, n, cutoff)
    return dropped


@njit(cache=True, inline="always")
def _apply_capped(flat, idx, n, cutoff):
    """Pass 2 of :func:`stacked_histogram_kernel`: in-range cell indices (pass 1 builds no other)."""
    for j in range(n):
        c = idx[j]
        if flat[c] < cutoff:
            flat[c] += 1


@njit(cache=True)
def voxel_grid_kernel(x, y, p, t, flat, n_t, n_c, height, width, edges, inv, dt, shift, t_limit):
    """Bilinear-in-time voxel grid: in time bin ``b`` (the common rule) the event sits at
    ``ts = (t - b * dt) * (C - 1) / dt`` in ``[0, C - 1]``; ``pol * (1 - frac(ts))`` goes to
    channel ``floor(ts)`` and ``pol * frac(ts)`` to the next one, ``pol = +1`` (ON) or ``-1``
    (OFF). ``flat`` is the C-contiguous ``[T, C, H, W]`` output flattened; cells are updated in
    event order, two passes per block of events (see :data:`BLOCK_EVENTS`)."""
    width_full = width << shift
    height_full = height << shift
    plane = height * width
    idx = np.empty(2 * BLOCK_EVENTS, np.uint64)
    dinc = np.empty(2 * BLOCK_EVENTS, np.float64)
    dropped = 0
    n = 0
    b = 0
    t_prev = np.int64(-1)  # in-range times are >= 0: no event matches before the first computation
    l = 0
    wl = 0.0
    wr = 0.0
    for i in range(t.size):
        xi = x[i]
        yi = y[i]
        ti = t[i]
        if _outside(xi, yi, ti, width_full, height_full, t_limit):
            dropped += 1
            continue
        # from here 0 <= xi >> shift < width and 0 <= yi >> shift < height
        if ti != t_prev:  # bin and weights depend on t only: equal timestamps reuse them
            b = _locate(ti, edges, b, inv)  # 0 <= b < n_t
            ts = (ti - b * dt) * (n_c - 1) / dt
            if ts < 0.0:
                ts = 0.0
            fl = math.floor(ts)
            l = int(fl)
            wr = ts - fl
            if l >= n_c - 1:
                l = n_c - 1
                wr = 0.0
            wl = 1.0 - wr
            # 0 <= l <= n_c - 1, and l + 1 <= n_c - 1 whenever wr != 0
            l = (b * n_c + l) * plane
            t_prev = ti
        sign = 1.0 if p[i] > 0 else -1.0
        c = np.uint64(l + (yi >> shift) * width + (xi >> shift))
        _prefetch(flat, c)
        idx[n] = c
        dinc[n] = sign * wl
        n += 1
        if wr != 0.0:
            c += np.uint64(plane)
            _prefetch(flat, c)
            idx[n] = c
            dinc[n] = sign * wr
            n += 1
        if n > 2 * BLOCK_EVENTS - 2:
            _apply_sum(flat, idx, dinc, n)
            n = 0
    _apply_sum(flat, idx, dinc, n)
    return dropped


def _flat_output(output_array):
    """``(flat, tmp)``: a 1-D view of a C-contiguous output, or of a C-contiguous copy ``tmp`` of
    a strided one (copied back by :func:`_copy_back`; values are copied, never recomputed)."""
    if output_array.flags.c_contiguous:
        return output_array.reshape(-1), None
    tmp = np.ascontiguousarray(output_array)
    return tmp.reshape(-1), tmp


def _copy_back(output_array, tmp):
    if tmp is not None:
        output_array[...] = tmp


def pool_sum(counts: np.ndarray, factor: int) -> np.ndarray:
    """Sums ``factor x factor`` blocks of the last two axes (float64); helper of the quantized
    functions' average pooling."""
    n_t, n_c, h, w = counts.shape
    return counts.reshape(n_t, n_c, h // factor, factor, w // factor, factor).sum(axis=(3, 5), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Checked entry points: the registry's event-to-tensor functions.
# ---------------------------------------------------------------------------------------------
# Common contract of every function below (the original's signature, plus keyword-only extras):
#
#   fn(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, <kwargs>,
#      *, on_out_of_range="drop", include_end=False) -> int
#
# * events: 1-D structured array with integer fields x, y, p, t (EventCD); t in µs relative to
#   the window start. Sorted order is not required: every event is binned by its own timestamp
#   (the original keeps a running bin that never moves back, so an out-of-order event lands in a
#   later bin there). Only the order-dependent parts depend on array order: the clamps of
#   histo/diff/event_cube, float rounding, and "the last event wins" of the time surfaces.
# * output_array: numpy [T, C, H, W], written in place (zeroed first if reset).
# * x and y are shifted right by downsampling_factor k; the sensor is (H << k) x (W << k).
# * on_out_of_range: "drop" | "warn" | "raise" (see evstream.preprocessing.validation); the
#   return value is the number of events dropped (0 under "raise"). The original returns None.
# * include_end: also accept t == total_tbins_delta_t (into the last bin). CDProcessor sets it
#   when it infers the window from the events (the last event then sits exactly on the end, and
#   the original puts it in the last bin).
# * preprocess_dtype: accepted and ignored (the output array's dtype decides); the original
#   raises TypeError when a caller forgets to pop it (docs/compatibility.md).



def _prepare(name, events, output_array, total_tbins_delta_t, downsampling_factor, reset,
             on_out_of_range, include_end, **output_checks):
    """Validates one call, applies the "raise" policy and the reset; returns what kernels need."""
    _v.check_policy(on_out_of_range, name)
    k = _v.check_downsampling(downsampling_factor, name)
    total = _v.check_total(total_tbins_delta_t, name)
    _v.check_output(output_array, name, **output_checks)
    x, y, p, t = _v.event_fields(events, name)
    t_limit = _v.time_limit(total, include_end)
    if on_out_of_range == "raise":
        _, _, h, w = output_array.shape
        _v.raise_if_out_of_range(x, y, t, w << k, h << k, t_limit, name)
    if reset:
        output_array[...] = 0
    return x, y, p, t, total, k, t_limit


def _increment(max_incr_per_pixel, k: int) -> float:
    """``1 / (max_incr_per_pixel * 4**k)``, or 1 if ``max_incr_per_pixel`` is None."""
    max_incr = _v.check_number(max_incr_per_pixel, "max_incr_per_pixel", "kernels", lo=0,
                               lo_open=True, allow_none=True)
    if max_incr is None:
        return 1.0
    return 1.0 / (max_incr * 4 ** k)


def _integral(inc: float) -> bool:
    return float(inc).is_integer()


def histo(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
          max_incr_per_pixel=5, *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Per-polarity histogram, 2 channels (0 = OFF, 1 = ON), values in [0, 1].

    ``dt = total / T``; an event goes to bin ``min(t // dt, T - 1)``, channel ``p``, pixel
    ``(y >> k, x >> k)``, and the cell becomes ``min(v + inc, 1)`` with
    ``inc = 1 / (max_incr_per_pixel * 4**k)`` (``1`` if ``max_incr_per_pixel`` is None): a cell
    hit ``n`` times holds ``min(n * inc, 1)`` (the sum is done event by event in float64 and
    rounded to the output dtype after each event, exactly as the original). Output: float, or an
    integer dtype when ``inc`` is a whole number (``max_incr_per_pixel=None``).
    Returns the number of dropped events.
    """
    name = "histo"
    k = _v.check_downsampling(downsampling_factor, name)
    inc = _increment(max_incr_per_pixel, k)
    kinds = "fiu" if _integral(inc) else "f"
    x, y, p, t, total, k, t_limit = _prepare(
        name, events, output_array, total_tbins_delta_t, k, reset, on_out_of_range, include_end,
        kinds=kinds, channels=2, why=f"increments of {inc} need a float output")
    n_t, _, h, w = output_array.shape
    flat, tmp = _flat_output(output_array)
    dropped = accumulate_kernel(x, y, p, t, flat, n_t, h, w, _v.time_edges(total, n_t), n_t / total,
                                k, inc, t_limit, False)
    _copy_back(output_array, tmp)
    return _v.report_dropped(dropped, on_out_of_range, name)


def diff(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
         max_incr_per_pixel=5, *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Polarity difference, 1 channel, values in [-1, 1].

    Same bins, pixels and ``inc`` as :func:`histo`; an ON event makes the cell
    ``min(v + inc, 1)``, an OFF event ``max(v - inc, -1)``, in array order (the clamp makes the
    result order-dependent once a cell saturates, as in the original). Output: float, or a
    signed integer dtype when ``inc`` is a whole number. Returns the number of dropped events.
    """
    name = "diff"
    k = _v.check_downsampling(downsampling_factor, name)
    inc = _increment(max_incr_per_pixel, k)
    kinds = "fi" if _integral(inc) else "f"
    x, y, p, t, total, k, t_limit = _prepare(
        name, events, output_array, total_tbins_delta_t, k, reset, on_out_of_range, include_end,
        kinds=kinds, channels=1, why="diff is signed" + ("" if _integral(inc) else f"; increments of {inc}"))
    n_t, _, h, w = output_array.shape
    flat, tmp = _flat_output(output_array)
    dropped = accumulate_kernel(x, y, p, t, flat, n_t, h, w, _v.time_edges(total, n_t), n_t / total,
                                k, inc, t_limit, True)
    _copy_back(output_array, tmp)
    return _v.report_dropped(dropped, on_out_of_range, name)


def _quantized(name, events, output_array, total_tbins_delta_t, downsampling_factor, reset,
               on_out_of_range, include_end, *, signed, lo, hi_off, hi_on, norm, normalization, channels):
    """Shared body of diff_quantized / histo_quantized.

    Direct mode (``k == 0`` and no normalisation): the clamped counts are accumulated in the
    output (integer or float). Otherwise the counts are made at full resolution in a temporary
    int16 array, average-pooled over ``2**k x 2**k`` blocks (block sum / 4**k), divided by
    ``norm`` if ``normalization``, and written (reset) or added (not reset) to the float output.
    """
    k = _v.check_downsampling(downsampling_factor, name)
    direct = k == 0 and not normalization
    if direct:
        kinds, why = ("fi" if signed else "fiu"), "counts"
    else:
        kinds = "f"
        why = "normalised values" if normalization else "pooled counts with downsampling_factor > 0"
    x, y, p, t, total, k, t_limit = _prepare(
        name, events, output_array, total_tbins_delta_t, k, False, on_out_of_range, include_end,
        kinds=kinds, channels=channels, why=why)
    if direct and output_array.dtype.kind in "iu":
        info = np.iinfo(output_array.dtype)
        if lo < info.min or max(hi_off, hi_on) > info.max:
            raise KernelArgumentError(f"{name}: output dtype {output_array.dtype} cannot hold counts in "
                                  f"[{lo}, {max(hi_off, hi_on)}]")
    n_t, _, h, w = output_array.shape
    edges, inv = _v.time_edges(total, n_t), n_t / total
    if direct:
        if reset:
            output_array[...] = 0
        dropped = quantized_kernel(x, y, p, t, output_array, edges, inv, 0, t_limit, signed, lo, hi_off, hi_on)
    else:
        counts = np.zeros((n_t, channels, h << k, w << k), np.int16)
        dropped = quantized_kernel(x, y, p, t, counts, edges, inv, 0, t_limit, signed, lo, hi_off, hi_on)
        values = pool_sum(counts, 1 << k) if k else counts.astype(np.float64)
        if k:
            values /= 4 ** k
        if normalization:
            values /= norm
        if reset:
            output_array[...] = values
        else:
            output_array += values
    return _v.report_dropped(dropped, on_out_of_range, name)


def diff_quantized(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
                   negative_bit_length=8, normalization=False, *, on_out_of_range="drop",
                   include_end=False, preprocess_dtype=None):
    """Signed event count ON - OFF per cell, 1 channel, clamped event by event to
    ``[-2**(nb-1), 2**(nb-1) - 1]`` with ``nb = negative_bit_length`` (2..8).

    Output: a signed integer (int8 by default) or float; with ``normalization`` a float divided
    by ``2**(nb-1)``; with ``downsampling_factor = k > 0`` a float, computed at full resolution
    and average-pooled over ``2**k x 2**k`` blocks (see :func:`_quantized`).
    """
    nb = _v.check_number(negative_bit_length, "negative_bit_length", "diff_quantized", lo=2, hi=8,
                         integer=True)
    if not 2 <= nb <= 8:
        raise KernelArgumentError(f"diff_quantized: negative_bit_length must be in [2, 8], got {negative_bit_length!r}")
    half = 1 << (nb - 1)
    return _quantized("diff_quantized", events, output_array, total_tbins_delta_t, downsampling_factor, reset,
                      on_out_of_range, include_end, signed=True, lo=-half, hi_off=half - 1, hi_on=half - 1,
                      norm=half, normalization=normalization, channels=1)


def histo_quantized(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
                    negative_bit_length=4, total_bit_length=8, normalization=False, *,
                    on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Per-polarity event counts, 2 channels (0 = OFF, 1 = ON), OFF clamped to ``2**nb - 1`` and
    ON to ``2**(tb - nb) - 1`` (``nb = negative_bit_length``, ``tb = total_bit_length``).

    Output: an integer (uint8 by default) or float; with ``normalization`` a float divided by the
    larger clamp; with ``downsampling_factor > 0`` a float, average-pooled (see :func:`_quantized`).
    """
    nb = _v.check_number(negative_bit_length, "negative_bit_length", "histo_quantized", lo=1, hi=15,
                         integer=True)
    tb = _v.check_number(total_bit_length, "total_bit_length", "histo_quantized", lo=2, hi=30,
                         integer=True)
    if not (1 <= nb < tb and tb - nb <= 15 and nb <= 15):
        raise KernelArgumentError(f"histo_quantized: need 1 <= negative_bit_length < total_bit_length with both "
                              f"parts <= 15 bits, got {negative_bit_length!r}, {total_bit_length!r}")
    hi_off, hi_on = (1 << nb) - 1, (1 << (tb - nb)) - 1
    return _quantized("histo_quantized", events, output_array, total_tbins_delta_t, downsampling_factor, reset,
                      on_out_of_range, include_end, signed=False, lo=0, hi_off=hi_off, hi_on=hi_on,
                      norm=max(hi_off, hi_on), normalization=normalization, channels=2)


def event_cube(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
               split_polarity=True, max_incr_per_pixel=5, *, on_out_of_range="drop", include_end=False,
               preprocess_dtype=None):
    """Event cube: linear interpolation in time over ``nbins`` micro-bins, values in [-1, 1].

    ``nbins = T * C / 2`` with ``split_polarity`` (C even), else ``T * C``; the output is viewed as
    ``[nbins, 2 or 1, H, W]`` (micro-bins T-major: per time bin the channels are
    ``[ub0_OFF, ub0_ON, ub1_OFF, ub1_ON, ...]``). For an event at ``t``:
    ``s = t * nbins / total - 0.5``, ``l = floor(s)``, ``wl = max(0, 1 - |l - s|)``,
    ``wr = 1 - wl``; micro-bin ``l`` gets ``wl * inc`` (if ``l >= 0``) and ``l + 1`` gets
    ``wr * inc`` (if ``l + 1 < nbins``), with ``inc = 1 / (max_incr_per_pixel * 4**k)``; without
    ``split_polarity`` the weights are negated for OFF events. Cells are clamped to [-1, 1] after
    each event. Events in the first and last half micro-bin lose part of their weight (the
    original's advice: load ``delta_t * (T + 1)`` of events). Float outputs only.
    """
    name = "event_cube"
    k = _v.check_downsampling(downsampling_factor, name)
    inc = _increment(max_incr_per_pixel, k)
    x, y, p, t, total, k, t_limit = _prepare(
        name, events, output_array, total_tbins_delta_t, k, reset, on_out_of_range, include_end,
        kinds="f", even_channels=bool(split_polarity), why="interpolated weights")
    n_t, n_c, h, w = output_array.shape
    nbins = n_t * (n_c // 2 if split_polarity else n_c)
    flat, tmp = _flat_output(output_array)
    dropped = event_cube_kernel(x, y, p, t, flat, h, w, nbins, total, k, inc, t_limit, bool(split_polarity))
    _copy_back(output_array, tmp)
    return _v.report_dropped(dropped, on_out_of_range, name)


def _timesurface_body(name, events, output_array, total_tbins_delta_t, downsampling_factor, reset, normed,
                      on_out_of_range, include_end, channels):
    k = _v.check_downsampling(downsampling_factor, name)
    if normed:
        kinds, why = "f", "normed values are in [0, 1)"
    else:
        wide = isinstance(output_array, np.ndarray) and output_array.dtype.itemsize >= 4
        kinds = "fiu" if wide else "f"
        why = "microsecond offsets need a float or a >= 32-bit integer"
    x, y, p, t, total, k, t_limit = _prepare(
        name, events, output_array, total_tbins_delta_t, k, reset, on_out_of_range, include_end,
        kinds=kinds, channels=channels, even_channels=True, why=why)
    n_t, n_c = output_array.shape[:2]
    nbins = n_t * (n_c // 2)
    dropped = timesurface_kernel(x, y, p, t, output_array, _v.time_edges(total, nbins), nbins / total,
                                 total / nbins, k, t_limit, bool(normed))
    return _v.report_dropped(dropped, on_out_of_range, name)


def timesurface(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, normed=True, *,
                on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Time surface, 2 channels (0 = OFF, 1 = ON), values in [0, 1).

    Bin ``b = min(t // dt, T - 1)``; ``value = t - b * dt`` is written to ``[b, p, y >> k, x >> k]``
    if ``0 <= value < dt`` (divided by ``dt`` when ``normed``): the last event of the array in a
    cell wins (for sorted input, the latest one). Output: float; with ``normed=False`` also an
    integer of 32 bits or more (the offset is truncated).
    """
    return _timesurface_body("timesurface", events, output_array, total_tbins_delta_t, downsampling_factor,
                             reset, normed, on_out_of_range, include_end, channels=2)


def multi_channel_timesurface(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
                              normed=True, *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Time surface over ``T * C / 2`` micro-bins (C even): the output is viewed as
    ``[T * C / 2, 2, H, W]`` (T-major, polarity pairs) and filled as :func:`timesurface` with
    ``dt = total / (T * C / 2)``. Values in [0, 1), float output."""
    return _timesurface_body("multi_channel_timesurface", events, output_array, total_tbins_delta_t,
                             downsampling_factor, reset, normed, on_out_of_range, include_end, channels=None)


def stacked_histogram(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
                      count_cutoff=10, *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """RVT's stacked histogram: per time bin, ``nb = C / 2`` micro-bins x 2 polarities of event
    counts, saturated at ``count_cutoff``.

    ``dt = total / (T * nb)``; an event goes to micro-bin ``m = min(t // dt, T * nb - 1)``, i.e.
    time bin ``m // nb`` and channel ``p * nb + m % nb`` (polarity-major as in RVT: channels
    ``0..nb-1`` are OFF, ``nb..2nb-1`` are ON), pixel ``(y >> k, x >> k)`` (downsampled counts are
    summed). A cell stops at ``count_cutoff`` (None: the dtype's maximum); integer outputs saturate,
    they never wrap (RVT's uint8 "fastmode" wraps past 255). Micro-bin edges are fixed by the window
    length (RVT spreads the bins between the first and last event time of each window).
    Output: any integer or float dtype; uint8 with cut-off 10 by default.
    """
    name = "stacked_histogram"
    x, y, p, t, total, k, t_limit = _prepare(
        name, events, output_array, total_tbins_delta_t, downsampling_factor, reset, on_out_of_range,
        include_end, kinds="fiu", even_channels=True)
    if output_array.dtype.kind in "iu":
        cap = int(np.iinfo(output_array.dtype).max)
    else:
        cap = 2 ** 24  # float32 counts stay exact up to here
    cutoff = _v.check_number(count_cutoff, "count_cutoff", name, lo=0, allow_none=True)
    if cutoff is not None:
        cap = min(cap, int(cutoff))
    n_t, n_c, h, w = output_array.shape
    nbins = n_t * (n_c // 2)
    flat, tmp = _flat_output(output_array)
    dropped = stacked_histogram_kernel(x, y, p, t, flat, n_c, h, w, _v.time_edges(total, nbins), nbins / total,
                                       k, t_limit, cap)
    _copy_back(output_array, tmp)
    return _v.report_dropped(dropped, on_out_of_range, name)


def voxel_grid(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, *,
               on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Voxel grid of Zhu et al. (2019), bilinear in time, ``C`` temporal channels per time bin.

    In time bin ``b = min(t // dt, T - 1)`` (``dt = total / T``) the event's normalised time is
    ``ts = (t - b * dt) * (C - 1) / dt`` in ``[0, C - 1)``: channel ``floor(ts)`` gets
    ``pol * (1 - frac(ts))`` and channel ``floor(ts) + 1`` gets ``pol * frac(ts)``, with
    ``pol = +1`` for ON and ``-1`` for OFF, i.e. ``V[c] = sum_i pol_i * max(0, 1 - |c - ts_i|)``.
    Zhu et al. map the first and last event of the window to channels 0 and C - 1; here the window
    bounds are used, so the grid does not depend on which events happen to be present. Each time
    bin sums to ``#ON - #OFF`` (exact conservation). No clamping, no scaling with downsampling
    (block sums). Float outputs only.
    """
    name = "voxel_grid"
    x, y, p, t, total, k, t_limit = _prepare(
        name, events, output_array, total_tbins_delta_t, downsampling_factor, reset, on_out_of_range,
        include_end, kinds="f", why="interpolated weights")
    n_t, n_c, h, w = output_array.shape
    flat, tmp = _flat_output(output_array)
    dropped = voxel_grid_kernel(x, y, p, t, flat, n_t, n_c, h, w, _v.time_edges(total, n_t), n_t / total,
                                total / n_t, k, t_limit)
    _copy_back(output_array, tmp)
    return _v.report_dropped(dropped, on_out_of_range, name)
