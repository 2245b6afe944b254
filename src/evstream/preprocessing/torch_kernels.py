"""Torch implementations of histo, diff, event_cube, stacked_histogram and voxel_grid.

Ship raw events to a device, build the tensors there::

    ev = events_to_torch(events, device="cuda")          # one host -> device copy
    out = torch.zeros((T, 2, H, W), dtype=torch.float32, device="cuda")
    histo(ev, out, T * delta_t)

Every function has the signature, the keyword arguments, the validation and the out-of-range
policy of its numba twin in :mod:`evstream.preprocessing.kernels`, and gives **the same numbers,
bit for bit** (the tests compare them on CPU torch; the code uses only device-agnostic ops, so it
runs unchanged on CUDA):

* order-independent functions (histo, stacked_histogram) count events per cell with
  ``torch.unique`` and map the counts through the exact per-event recurrence (a lookup table when
  the cells start at zero);
* order-dependent ones (diff and event_cube clamp event by event; every float sum rounds event
  by event) use :func:`sequential_add`: contributions are sorted stably by cell, ranked inside
  their cell, and applied in rounds (round r applies the r-th contribution of every cell at once),
  which replays the CPU kernel's event-by-event float64 add / clamp / round exactly. The number of
  rounds is the largest number of contributions to one cell.

``events`` may be a numpy EventCD array (copied to the output's device), a :class:`TorchEvents`,
or anything with ``x, y, p, t`` tensor attributes. Each function returns the number of dropped
events (this synchronises with the device once per call).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from evstream.errors import EventArrayError, KernelArgumentError
from evstream.preprocessing import validation as _v
from evstream.preprocessing.kernels import _increment

_TORCH_TO_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
                   torch.bfloat16: np.float16, torch.int8: np.int8, torch.int16: np.int16,
                   torch.int32: np.int32, torch.int64: np.int64, torch.uint8: np.uint8}


class TorchEvents(NamedTuple):
    """Event columns as int64 tensors on one device."""
    x: torch.Tensor
    y: torch.Tensor
    p: torch.Tensor
    t: torch.Tensor

    def __len__(self):
        return int(self.t.shape[0])


def events_to_torch(events, device=None) -> TorchEvents:
    """EventCD numpy array (or TorchEvents) -> :class:`TorchEvents` of int64 on ``device``, in
    one host-to-device copy."""
    if isinstance(events, TorchEvents):
        return events if device is None else TorchEvents(*(c.to(device) for c in events))
    if isinstance(events, np.ndarray):
        x, y, p, t = _v.event_fields(events, "events_to_torch")
        packed = np.empty((4, len(t)), np.int64)
        packed[0], packed[1], packed[2], packed[3] = x, y, p, t
        cols = torch.from_numpy(packed).to(device) if device is not None else torch.from_numpy(packed)
        return TorchEvents(cols[0], cols[1], cols[2], cols[3])
    if all(hasattr(events, f) for f in "xypt"):
        cols = [torch.as_tensor(getattr(events, f)).to(torch.int64) for f in "xypt"]
        return TorchEvents(*(c.to(device) if device is not None else c for c in cols))
    raise EventArrayError(f"events must be an EventCD numpy array or TorchEvents, got {type(events).__name__}")


def _prepare(name, events, output, total_tbins_delta_t, downsampling_factor, reset, on_out_of_range,
             include_end, **output_checks):
    """Validation, policy and reset (as ``kernels._prepare``); returns the in-range events."""
    _v.check_policy(on_out_of_range, name)
    k = _v.check_downsampling(downsampling_factor, name)
    total = _v.check_total(total_tbins_delta_t, name)
    if not isinstance(output, torch.Tensor):
        raise KernelArgumentError(f"{name}: output_array must be a torch tensor, got {type(output).__name__}")
    if output.dtype not in _TORCH_TO_NUMPY or output.dtype in (torch.float16, torch.bfloat16):
        raise KernelArgumentError(f"{name}: output_array dtype {output.dtype} not supported")
    _v.check_output_meta(tuple(output.shape), np.dtype(_TORCH_TO_NUMPY[output.dtype]), name, **output_checks)
    ev = events_to_torch(events, output.device)
    _, _, h, w = output.shape
    t_limit = _v.time_limit(total, include_end)
    bad = (ev.x < 0) | (ev.x >= w << k) | (ev.y < 0) | (ev.y >= h << k) | (ev.t < 0) | (ev.t >= t_limit)
    n_bad = int(bad.sum())
    if n_bad:
        if on_out_of_range == "raise":
            i = int(torch.nonzero(bad)[0])
            raise EventArrayError(
                f"{name}: {n_bad} event(s) outside the window/geometry (t in [0, {t_limit}), x < {w << k}, "
                f"y < {h << k}); first at index {i}: x={int(ev.x[i])} y={int(ev.y[i])} t={int(ev.t[i])}")
        keep = ~bad
        ev = TorchEvents(ev.x[keep], ev.y[keep], ev.p[keep], ev.t[keep])
    if reset:
        output.zero_()
    return ev, total, k, n_bad


def _bins(t, total: float, nbins: int) -> torch.Tensor:
    """``min(t // (total / nbins), nbins - 1)`` with the kernels' exact integer edges."""
    inner = torch.from_numpy(_v.time_edges(total, nbins)[1:-1]).to(t.device)
    return torch.bucketize(t, inner, right=True)


def _pixel(ev: TorchEvents, k: int, h: int, w: int):
    """Flat pixel index ``(y >> k) * W + (x >> k)``."""
    return (ev.y >> k) * w + (ev.x >> k)


def _on(ev: TorchEvents) -> torch.Tensor:
    return (ev.p > 0).to(torch.int64)


def sequential_add(flat: torch.Tensor, cells: torch.Tensor, deltas: torch.Tensor, clamp: str) -> None:
    """Applies ``v = clamp(v + delta)`` (float64 add, then rounded to ``flat``'s dtype) for each
    contribution, in the given order, to the 1-D tensor ``flat`` — the CPU kernels' event loop.

    ``clamp``: ``"none"``, ``"upper"`` (``min(v, 1)``), ``"both"`` (``[-1, 1]``) or ``"signed"``
    (``min(v, 1)`` for a positive delta, ``max(v, -1)`` otherwise).
    """
    n = cells.numel()
    if n == 0:
        return
    order = torch.argsort(cells, stable=True)
    cells, deltas = cells[order], deltas[order]
    first = torch.ones(n, dtype=torch.bool, device=cells.device)
    first[1:] = cells[1:] != cells[:-1]
    starts = torch.nonzero(first).squeeze(1)
    segment = torch.cumsum(first.to(torch.int64), 0) - 1
    rank = torch.arange(n, device=cells.device) - starts[segment]
    by_rank = torch.argsort(rank, stable=True)
    sizes = torch.bincount(rank).tolist()
    pos = 0
    for size in sizes:
        idx = by_rank[pos:pos + size]
        pos += size
        c, d = cells[idx], deltas[idx]
        v = flat[c].to(torch.float64) + d
        if clamp == "upper":
            v = torch.clamp(v, max=1.0)
        elif clamp == "both":
            v = torch.clamp(v, -1.0, 1.0)
        elif clamp == "signed":
            v = torch.where(d > 0, torch.clamp(v, max=1.0), torch.clamp(v, min=-1.0))
        flat[c] = v.to(flat.dtype)


def _writable_flat(output: torch.Tensor):
    """A flat view of ``output`` (or a contiguous copy to write back with :func:`_write_back`)."""
    return output.view(-1) if output.is_contiguous() else output.contiguous().view(-1)


def _write_back(output: torch.Tensor, flat: torch.Tensor) -> None:
    if not output.is_contiguous():
        output.copy_(flat.view(output.shape))


def histo(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, max_incr_per_pixel=5,
          *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Torch twin of :func:`evstream.preprocessing.kernels.histo` (same numbers)."""
    name = "histo"
    k = _v.check_downsampling(downsampling_factor, name)
    inc = _increment(max_incr_per_pixel, k)
    kinds = "fiu" if float(inc).is_integer() else "f"
    ev, total, k, dropped = _prepare(name, events, output_array, total_tbins_delta_t, k, reset, on_out_of_range,
                                     include_end, kinds=kinds, channels=2,
                                     why=f"increments of {inc} need a float output")
    n_t, n_c, h, w = output_array.shape
    cells = (_bins(ev.t, total, n_t) * n_c + _on(ev)) * (h * w) + _pixel(ev, k, h, w)
    flat = _writable_flat(output_array)
    uniq, counts = torch.unique(cells, return_counts=True)
    if uniq.numel():
        _apply_repeated(flat, uniq, counts, inc, output_array.dtype)
    _write_back(output_array, flat)
    return _v.report_dropped(dropped, on_out_of_range, name)


def _apply_repeated(flat, cells, counts, inc, dtype) -> None:
    """``v <- min(v + inc, 1)`` applied ``counts[i]`` times to ``flat[cells[i]]``, exactly."""
    np_dtype = _TORCH_TO_NUMPY[dtype]
    v0 = flat[cells]
    saturate = int(np.ceil(1.0 / inc)) + 2
    if bool((v0 == 0).all()):
        lut, v = [0.0], np_dtype(0)
        for _ in range(min(int(counts.max()), saturate)):
            v = np_dtype(min(float(v) + inc, 1.0))
            lut.append(float(v))
        table = torch.tensor(lut, dtype=torch.float64, device=flat.device).to(dtype)
        flat[cells] = table[torch.clamp(counts, max=len(lut) - 1)]
        return
    steps = min(int(counts.max()), saturate + int(np.ceil(max(0.0, -float(v0.min())) / inc)))
    v = v0
    for s in range(steps):
        stepped = torch.clamp(v.to(torch.float64) + inc, max=1.0).to(dtype)
        v = torch.where(counts > s, stepped, v)
    flat[cells] = v


def diff(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, max_incr_per_pixel=5,
         *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Torch twin of :func:`evstream.preprocessing.kernels.diff` (same numbers, including the
    order-dependent clamping)."""
    name = "diff"
    k = _v.check_downsampling(downsampling_factor, name)
    inc = _increment(max_incr_per_pixel, k)
    kinds = "fi" if float(inc).is_integer() else "f"
    ev, total, k, dropped = _prepare(name, events, output_array, total_tbins_delta_t, k, reset, on_out_of_range,
                                     include_end, kinds=kinds, channels=1, why="diff is signed")
    n_t, _, h, w = output_array.shape
    cells = _bins(ev.t, total, n_t) * (h * w) + _pixel(ev, k, h, w)
    step = torch.full(ev.t.shape, inc, dtype=torch.float64, device=ev.t.device)
    deltas = torch.where(ev.p > 0, step, -step)
    flat = _writable_flat(output_array)
    sequential_add(flat, cells, deltas, "signed")
    _write_back(output_array, flat)
    return _v.report_dropped(dropped, on_out_of_range, name)


def event_cube(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, split_polarity=True,
               max_incr_per_pixel=5, *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Torch twin of :func:`evstream.preprocessing.kernels.event_cube` (same numbers)."""
    name = "event_cube"
    k = _v.check_downsampling(downsampling_factor, name)
    inc = _increment(max_incr_per_pixel, k)
    ev, total, k, dropped = _prepare(name, events, output_array, total_tbins_delta_t, k, reset, on_out_of_range,
                                     include_end, kinds="f", even_channels=bool(split_polarity),
                                     why="interpolated weights")
    n_t, n_c, h, w = output_array.shape
    cpb = n_c // 2 if split_polarity else n_c
    nbins = n_t * cpb
    s = (ev.t * nbins).to(torch.float64) / total - 0.5
    fl = torch.floor(s)
    wl = torch.clamp(1.0 - torch.abs(fl - s), min=0.0)
    wr = 1.0 - wl
    left = fl.to(torch.int64)
    m = torch.stack([left, left + 1], 1).reshape(-1)
    d = (torch.stack([wl, wr], 1) * inc).reshape(-1)
    on = torch.repeat_interleave(ev.p > 0, 2)
    pix = torch.repeat_interleave(_pixel(ev, k, h, w), 2)
    keep = (m >= 0) & (m < nbins)
    m, d, on, pix = m[keep], d[keep], on[keep], pix[keep]
    if split_polarity:
        channel = 2 * (m % cpb) + on.to(torch.int64)
    else:
        channel = m % cpb
        d = torch.where(on, d, -d)
    cells = ((m // cpb) * n_c + channel) * (h * w) + pix
    flat = _writable_flat(output_array)
    sequential_add(flat, cells, d, "both")
    _write_back(output_array, flat)
    return _v.report_dropped(dropped, on_out_of_range, name)


def stacked_histogram(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
                      count_cutoff=10, *, on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Torch twin of :func:`evstream.preprocessing.kernels.stacked_histogram` (same numbers)."""
    name = "stacked_histogram"
    ev, total, k, dropped = _prepare(name, events, output_array, total_tbins_delta_t, downsampling_factor, reset,
                                     on_out_of_range, include_end, kinds="fiu", even_channels=True)
    n_t, n_c, h, w = output_array.shape
    nb = n_c // 2
    if output_array.dtype.is_floating_point:
        cap = 2 ** 24
    else:
        cap = int(torch.iinfo(output_array.dtype).max)
    if count_cutoff is not None:
        if count_cutoff < 0:
            raise KernelArgumentError(f"{name}: count_cutoff must be >= 0 or None, got {count_cutoff!r}")
        cap = min(cap, int(count_cutoff))
    m = _bins(ev.t, total, n_t * nb)
    cells = ((m // nb) * n_c + _on(ev) * nb + m % nb) * (h * w) + _pixel(ev, k, h, w)
    flat = _writable_flat(output_array)
    uniq, counts = torch.unique(cells, return_counts=True)
    if uniq.numel():
        v0 = flat[uniq]
        if bool((v0 == torch.floor(v0)).all()) if v0.is_floating_point() else True:
            # whole-number cells: the event-by-event "+1 while below the cap" is exact in one step
            v64 = v0.to(torch.float64)
            grown = torch.clamp(v64 + counts.to(torch.float64), max=float(cap))
            flat[uniq] = torch.where(v64 >= cap, v64, grown).to(flat.dtype)
        else:  # fractional float content (reset=False): replay the increments with their rounding
            v = v0
            for step in range(int(counts.max())):
                grown = (v.to(torch.float64) + 1.0).to(v.dtype)
                v = torch.where((counts > step) & (v < cap), grown, v)
            flat[uniq] = v
    _write_back(output_array, flat)
    return _v.report_dropped(dropped, on_out_of_range, name)


def voxel_grid(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, *,
               on_out_of_range="drop", include_end=False, preprocess_dtype=None):
    """Torch twin of :func:`evstream.preprocessing.kernels.voxel_grid` (same numbers)."""
    name = "voxel_grid"
    ev, total, k, dropped = _prepare(name, events, output_array, total_tbins_delta_t, downsampling_factor, reset,
                                     on_out_of_range, include_end, kinds="f", why="interpolated weights")
    n_t, n_c, h, w = output_array.shape
    dt = total / n_t
    b = _bins(ev.t, total, n_t)
    ts = torch.clamp((ev.t.to(torch.float64) - b.to(torch.float64) * dt) * (n_c - 1) / dt, min=0.0)
    fl = torch.floor(ts)
    wr = ts - fl
    left = fl.to(torch.int64)
    last = left >= n_c - 1
    left = torch.where(last, n_c - 1, left)
    wr = torch.where(last, 0.0, wr)
    sign = torch.where(ev.p > 0, 1.0, -1.0).to(torch.float64)
    base = b * (n_c * h * w) + _pixel(ev, k, h, w)
    cells = torch.stack([base + left * (h * w), base + (left + 1) * (h * w)], 1).reshape(-1)
    d = torch.stack([sign * (1.0 - wr), sign * wr], 1).reshape(-1)
    keep = torch.stack([torch.ones_like(last), wr != 0], 1).reshape(-1)
    flat = _writable_flat(output_array)
    sequential_add(flat, cells[keep], d[keep], "none")
    _write_back(output_array, flat)
    return _v.report_dropped(dropped, on_out_of_range, name)


#: Registry name -> torch function, for the names that have a torch twin.
TORCH_FUNCTIONS = {"histo": histo, "diff": diff, "event_cube": event_cube, "event_cube_paper": event_cube,
                   "stacked_histogram": stacked_histogram, "voxel_grid": voxel_grid}
