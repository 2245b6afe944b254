"""Tensor-building throughput: evstream's kernels vs baselines measured in the same run.

Two synthetic 1280x720 sources at 20 Mev/s (1 M events per 50 ms window), one table each:

* ``scattered`` (worst case): 40 moving rectangles whose edges fire at random points of their
  perimeters plus 10 % uniform noise; timestamps sorted, but consecutive events land on unrelated
  pixels (about one cache miss per event).
* ``runs`` (the number to report): ``benchmarks/synthetic_stream.py``'s ``synthetic_events``,
  which has the structure of real sensor output: short runs of neighbouring pixels on one row at
  one timestamp, sorted by (t, y, x).

Each call builds the tensor of one 50 ms window from scratch (reset included), single thread.
Every rate is the best of ``EVSTREAM_BENCH_REPEAT`` (default 3) passes over the windows, and the
kernels and their baselines run on the same events in the same process.

Columns:
* Mev/s: events per second through the evstream function (validation + reset + kernel).
* peak MiB/call: extra memory allocated during one call (tracemalloc; the preallocated output
  is not counted; shown next to it as "out MiB"). Torch rows: not traced (n/a).
* numpy Mev/s: a numpy ``bincount`` implementation of the same tensor (histogram cells, or two
  weighted bincounts for the interpolating functions) into the same output — the baseline.
* scatter Mev/s: a plain unchecked numba ``+= 1`` of each event into the same output (zeroed
  first), spread over the same time planes (micro-bins x polarity): what a straightforward loop
  gets (one cell per event, also for the interpolating functions; no prefetching, so each random
  read-modify-write waits on memory, which the evstream kernels avoid by prefetching a block of
  cells ahead).

Run: ``python benchmarks/bench_preprocessing.py``. Prints a markdown table; never asserts on time.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_stream import synthetic_events  # noqa: E402

from evstream.io.dtypes import EventCD  # noqa: E402
from evstream.preprocessing import kernels as K  # noqa: E402

WIDTH, HEIGHT, WINDOW_US = 1280, 720, 50_000


def synthetic_stream(n_windows=4, rate_mev_s=20.0, seed=0):
    """List of per-window EventCD arrays (t relative to each window start)."""
    rng = np.random.default_rng(seed)
    n = int(rate_mev_s * WINDOW_US * n_windows)
    t = np.sort(rng.integers(0, WINDOW_US * n_windows, n))
    n_obj = 40
    cx, cy = rng.uniform(0, WIDTH, n_obj), rng.uniform(0, HEIGHT, n_obj)
    vx, vy = rng.uniform(-2e-3, 2e-3, n_obj), rng.uniform(-1e-3, 1e-3, n_obj)  # px / µs
    hw, hh = rng.uniform(10, 120, n_obj), rng.uniform(10, 120, n_obj)
    obj = rng.integers(0, n_obj, n)
    u = rng.uniform(0, 4, n)
    side, f = u.astype(np.int64), u % 1.0
    dx = np.select([side == 0, side == 1, side == 2], [2 * f - 1, 1.0, 1 - 2 * f], -1.0) * hw[obj]
    dy = np.select([side == 0, side == 1, side == 2], [-1.0, 2 * f - 1, 1.0], 1 - 2 * f) * hh[obj]
    xs = (cx[obj] + vx[obj] * t + dx + rng.normal(0, 1.5, n)) % WIDTH
    ys = (cy[obj] + vy[obj] * t + dy + rng.normal(0, 1.5, n)) % HEIGHT
    noise = rng.random(n) < 0.1
    xs[noise], ys[noise] = rng.uniform(0, WIDTH, noise.sum()), rng.uniform(0, HEIGHT, noise.sum())
    leading = (((side == 0) & (vy[obj] < 0)) | ((side == 1) & (vx[obj] > 0)) | ((side == 2) & (vy[obj] > 0))
               | ((side == 3) & (vx[obj] < 0)))
    ev = np.empty(n, EventCD)
    ev["x"], ev["y"], ev["t"] = xs.astype(np.uint16), ys.astype(np.uint16), t
    ev["p"] = np.where(noise, rng.integers(0, 2, n), leading)
    cuts = np.searchsorted(t, np.arange(n_windows + 1) * WINDOW_US)
    windows = []
    for i in range(n_windows):
        w = ev[cuts[i]:cuts[i + 1]].copy()
        w["t"] -= i * WINDOW_US
        windows.append(w)
    return windows


def runs_stream(n_windows=4, rate_mev_s=20.0, seed=0):
    """Per-window EventCD arrays cut from ``synthetic_events`` (row runs at one timestamp, sorted
    by (t, y, x)), t relative to each window start."""
    ev = synthetic_events(int(rate_mev_s * WINDOW_US * n_windows), HEIGHT, WIDTH, rate_mev_s * 1e6, seed=seed)
    cuts = np.searchsorted(ev["t"], np.arange(n_windows + 1) * WINDOW_US)
    windows = []
    for i in range(n_windows):
        w = ev[cuts[i]:cuts[i + 1]].copy()
        w["t"] -= i * WINDOW_US
        windows.append(w)
    return windows


SOURCES = [  # name, generator, description
    ("scattered", synthetic_stream, "40 moving rectangles + 10 % noise, unrelated pixels one after the other "
                                    "(worst case)"),
    ("runs", runs_stream, "synthetic_stream.synthetic_events: runs of neighbouring pixels on a row at one "
                          "timestamp, sorted by (t, y, x) (realistic: the number to report)"),
]
REPEAT = int(os.environ.get("EVSTREAM_BENCH_REPEAT", 3))


@njit(cache=True)
def plain_scatter(x, y, p, t, out, inv, per_pol):
    """``flat[(m * per_pol + p) * H * W + y * W + x] += 1`` with no checks, ``m = t * inv`` the
    micro-bin: the memory-bound floor, touching the same planes as the function measured."""
    flat = out.reshape(-1)
    _, _, h, w = out.shape
    for i in range(t.size):
        m = int(t[i] * inv)
        flat[((m * per_pol + p[i] % per_pol) * h + y[i]) * w + x[i]] += 1


def numpy_bincount(ev, out, interpolate: bool):
    """Baseline: the same tensor shape built with numpy bincount (one cell per event, or two
    linearly weighted cells per event along the flattened T*C micro-bins)."""
    n_t, n_c, h, w = out.shape
    nbins = n_t * n_c
    t = ev["t"].astype(np.float64) * (nbins / WINDOW_US)
    pix = ev["y"].astype(np.int64) * w + ev["x"]
    if interpolate:
        left = np.floor(t).astype(np.int64)
        wr = t - left
        right = np.minimum(left + 1, nbins - 1)
        sign = np.where(ev["p"] > 0, 1.0, -1.0)
        flat = np.bincount(left * (h * w) + pix, sign * (1 - wr), minlength=out.size)
        flat += np.bincount(right * (h * w) + pix, sign * wr, minlength=out.size)
    else:
        cell = np.minimum(t.astype(np.int64), nbins - 1) // n_c * n_c + ev["p"] % n_c
        flat = np.bincount(cell * (h * w) + pix, minlength=out.size)
    out[...] = flat.reshape(out.shape)


CONFIGS = [  # name, T, C, dtype, kwargs, interpolating
    ("histo", 5, 2, np.float32, {}, False),
    ("diff", 5, 1, np.float32, {}, False),
    ("histo_quantized", 5, 2, np.uint8, {}, False),
    ("diff_quantized", 5, 1, np.int8, {}, False),
    ("timesurface", 5, 2, np.float32, {}, False),
    ("multi_channel_timesurface", 5, 6, np.float32, {}, False),
    ("event_cube", 5, 6, np.float32, {}, True),
    ("stacked_histogram", 1, 20, np.uint8, {}, False),
    ("voxel_grid", 1, 10, np.float32, {}, True),
]
TORCH_NAMES = ["histo", "diff", "event_cube", "stacked_histogram", "voxel_grid"]


def _rate(fn, windows, repeat=None) -> float:
    """Best of ``repeat`` passes over ``windows``, in Mev/s."""
    fn(windows[0])  # warm-up / compile
    n = sum(len(w) for w in windows)
    best = float("inf")
    for _ in range(REPEAT if repeat is None else repeat):
        t0 = time.perf_counter()
        for w in windows:
            fn(w)
        best = min(best, time.perf_counter() - t0)
    return n / best / 1e6


def _peak_mib(fn, window) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn(window)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / 2 ** 20


def _table(windows) -> None:
    print("| function | T x C | dtype | Mev/s | peak MiB/call | out MiB | numpy bincount Mev/s | ratio vs numpy "
          "| plain scatter Mev/s | ratio vs scatter |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, n_t, n_c, dtype, kw, interp in CONFIGS:
        out = np.zeros((n_t, n_c, HEIGHT, WIDTH), dtype)
        fn = getattr(K, name)
        ours = _rate(lambda w: fn(w, out, WINDOW_US, **kw), windows)
        peak = _peak_mib(lambda w: fn(w, out, WINDOW_US, **kw), windows[0])
        base = _rate(lambda w: numpy_bincount(w, out, interp), windows[:2])
        per_pol = 1 if name in ("diff", "diff_quantized", "voxel_grid") else 2
        inv = (n_t if n_c <= 2 else n_t * n_c // per_pol) / WINDOW_US

        def scatter(w):
            out[...] = 0
            plain_scatter(w["x"], w["y"], w["p"], w["t"], out, inv, per_pol)
        floor = _rate(scatter, windows)
        print(f"| {name} | {n_t} x {n_c} | {np.dtype(dtype).name} | {ours:.1f} | {peak:.1f} | {out.nbytes / 2**20:.1f} "
              f"| {base:.1f} | {ours / base:.1f}x | {floor:.1f} | {ours / floor:.2f} |")
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None:
        from evstream.preprocessing import torch_kernels as TK
        torch.set_num_threads(1)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        for name in TORCH_NAMES:
            _, n_t, n_c, dtype, kw, _ = next(c for c in CONFIGS if c[0] == name)
            out = torch.zeros((n_t, n_c, HEIGHT, WIDTH), dtype=torch.from_numpy(np.zeros(1, dtype)).dtype,
                              device=device)
            dev_windows = [TK.events_to_torch(w, device) for w in windows[:2]]
            fn = getattr(TK, name)

            def run(w, fn=fn, out=out):
                fn(w, out, WINDOW_US, **kw)
                if device == "cuda":
                    torch.cuda.synchronize()
            ours = _rate(run, dev_windows, repeat=1)
            print(f"| torch:{name} ({device}) | {n_t} x {n_c} | {np.dtype(dtype).name} | {ours:.1f} | n/a "
                  f"| {out.numel() * out.element_size() / 2**20:.1f} | | | | |")


def main() -> None:
    t_start = time.perf_counter()
    n_windows = int(os.environ.get("EVSTREAM_BENCH_WINDOWS", 4))
    print(f"# evstream preprocessing benchmark: {WIDTH}x{HEIGHT}, {n_windows} windows of "
          f"{WINDOW_US // 1000} ms at 20 Mev/s, single thread, best of {REPEAT}")
    for source, make, what in SOURCES:
        windows = make(n_windows=n_windows)
        n_ev = sum(len(w) for w in windows)
        print(f"\n## source `{source}`: {what}; {n_ev / len(windows) / 1e6:.2f} M events/window\n")
        _table(windows)
    print(f"\nnumpy bincount builds the same tensor shape (counts, or linear weights for event_cube/voxel_grid); "
          f"plain scatter = unchecked numba `out[b, c, y, x] += 1` into the same output, zeroed per call. "
          f"Total benchmark time {time.perf_counter() - t_start:.0f} s.")


if __name__ == "__main__":
    main()
