"""COCO evaluation speed: pycocotools against faster-coco-eval on the same inputs, through
:func:`evstream.metrics.evaluate_detection` (the toolbox's protocol), plus the HDF5
event-arrays reader against a bare h5py read of the same columns.

Workload (metrics): ``RECORDINGS`` recordings of 60 s with labels at 20 Hz (Gen1-like 304x240,
2 classes, 1-8 boxes per label time), detections = each box twice with jitter plus 4 false
positives per label time, scores uniform. Prints markdown tables; never asserts on time.
Run: ``python benchmarks/bench_metrics.py``.
"""

from __future__ import annotations

import os
import tempfile
import time

import h5py
import hdf5plugin
import numpy as np

from evstream.io import EventBbox, EventsIterator, load_events
from evstream.metrics import COCO_METRIC_NAMES, evaluate_detection

RECORDINGS = 10
LABEL_TIMES = 1200            # 60 s at 20 Hz
H5_EVENTS = 20_000_000


def synthetic_recording(rng, width=304, height=240):
    times = 50_000 * np.arange(1, LABEL_TIMES + 1)
    counts = rng.integers(1, 9, LABEL_TIMES)
    n = int(counts.sum())
    gt = np.zeros(n, EventBbox)
    gt["t"] = np.repeat(times, counts)
    gt["x"], gt["y"] = rng.uniform(0, width - 80, n), rng.uniform(0, height - 80, n)
    gt["w"], gt["h"] = rng.uniform(12, 80, n), rng.uniform(12, 80, n)
    gt["class_id"] = rng.integers(0, 2, n)
    dt = np.repeat(gt, 2)
    dt["x"] += rng.normal(0, 4, len(dt)).astype(np.float32)
    dt["y"] += rng.normal(0, 4, len(dt)).astype(np.float32)
    fp = np.zeros(4 * LABEL_TIMES, EventBbox)
    fp["t"] = np.repeat(times, 4)
    fp["x"], fp["y"] = rng.uniform(0, width - 40, len(fp)), rng.uniform(0, height - 40, len(fp))
    fp["w"], fp["h"] = 40, 40
    fp["class_id"] = rng.integers(0, 2, len(fp))
    dt = np.concatenate([dt, fp])
    dt = dt[np.argsort(dt["t"], kind="stable")]
    dt["class_confidence"] = rng.uniform(0, 1, len(dt))
    return gt, dt


def bench_coco() -> None:
    rng = np.random.default_rng(0)
    data = [synthetic_recording(rng) for _ in range(RECORDINGS)]
    gts, dts = [d[0] for d in data], [d[1] for d in data]
    n_gt, n_dt = sum(map(len, gts)), sum(map(len, dts))
    print(f"\n### COCO evaluation, {RECORDINGS} recordings, {RECORDINGS * LABEL_TIMES} images, "
          f"{n_gt:,} ground-truth boxes, {n_dt:,} detections (best of 3)\n")
    print("| backend | seconds | AP | AP_50 | max abs difference to pycocotools (12 stats) |")
    print("|---|---|---|---|---|")
    reference = None
    for backend in ("pycocotools", "faster_coco_eval"):
        best, metrics = float("inf"), None
        for _ in range(3):
            start = time.perf_counter()
            metrics = evaluate_detection(gts, dts, backend=backend)
            best = min(best, time.perf_counter() - start)
        values = np.array([metrics[k] for k in COCO_METRIC_NAMES])
        reference = values if reference is None else reference
        print(f"| {backend} | {best:.2f} | {metrics['AP']:.4f} | {metrics['AP_50']:.4f} | "
              f"{np.abs(values - reference).max():.1e} |")


def bench_event_arrays() -> None:
    rng = np.random.default_rng(1)
    t = np.sort(rng.integers(0, 20_000_000, H5_EVENTS)).astype(np.int64)
    columns = {"x": rng.integers(0, 1280, H5_EVENTS).astype("u2"),
               "y": rng.integers(0, 720, H5_EVENTS).astype("u2"),
               "p": rng.integers(0, 2, H5_EVENTS).astype("u1"), "t": t}
    print(f"\n### HDF5 event arrays (events/x,y,p,t), {H5_EVENTS / 1e6:.0f} M events, whole-file "
          f"read (best of 5, interleaved)\n")
    print("| compression | bare h5py, 4 columns (s) | load_events (s) | Mev/s | EventsIterator "
          "50 ms windows (s) | Mev/s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts in (("none", {}), ("blosc zstd", dict(hdf5plugin.Blosc(cname="zstd")))):
            path = os.path.join(tmp, f"{name}.h5")
            with h5py.File(path, "w") as f:
                g = f.create_group("events")
                for k, v in columns.items():
                    g.create_dataset(k, data=v, chunks=(1 << 16,), **opts)
                g.create_dataset("height", data=720)
                g.create_dataset("width", data=1280)
            bare = whole = windows = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                with h5py.File(path, "r") as f:
                    _ = [f["events"][k][:] for k in "xypt"]
                bare = min(bare, time.perf_counter() - start)
                start = time.perf_counter()
                events = load_events(path)
                whole = min(whole, time.perf_counter() - start)
                del events
                start = time.perf_counter()
                count = sum(len(w) for w in EventsIterator(path, delta_t=50_000))
                windows = min(windows, time.perf_counter() - start)
            print(f"| {name} | {bare:.2f} | {whole:.2f} | {H5_EVENTS / whole / 1e6:.0f} | "
                  f"{windows:.2f} | {count / windows / 1e6:.0f} |")


def main() -> None:
    bench_coco()
    bench_event_arrays()


if __name__ == "__main__":
    main()
