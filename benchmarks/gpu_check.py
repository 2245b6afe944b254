"""GPU check of evstream.preprocessing.torch_kernels (prepared, NOT YET RUN on a GPU: no GPU was
available to the session that wrote it, so there are no GPU figures anywhere in the README).

On a CUDA machine it:

1. compares every torch kernel (histo, diff, event_cube, stacked_histogram, voxel_grid) run on
   CUDA against its numba twin on the CPU, on 1280x720 windows of 1 M events (synthetic row-run
   stream and uniformly scattered events), at downsampling 0 and 1: the tensors must be
   bit-identical (the torch kernels replay the CPU arithmetic; a mismatch is printed with the
   largest difference, and the script exits non-zero);
2. times each kernel on CUDA (events already on the device; ``torch.cuda.synchronize`` around
   the timed calls; best of 5 after a warm-up) next to the numba kernel on one CPU thread, in
   Gev/s;
3. times the streaming loader with tensors built on the GPU: windows decoded on the CPU
   (``EventsIterator``), shipped with ``events_to_torch(device="cuda")`` and accumulated by the
   torch histo kernel, against the CPU loader path (``CDProcessorIterator``), in Mev/s.

Run: ``python benchmarks/gpu_check.py`` (prints markdown tables; exits 2 when CUDA is absent).
``--cpu`` runs the same script with the torch kernels on the CPU: a dry run that checks the script
and the bit-identity on a machine without a GPU (its figures are not GPU figures).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_peers import cpu_model  # noqa: E402
from synthetic_stream import synthetic_events  # noqa: E402

from evstream.data.cd_processor_iterator import CDProcessorIterator  # noqa: E402
from evstream.io import EventCD, EventsIterator, RawWriter  # noqa: E402
from evstream.preprocessing import kernels, torch_kernels  # noqa: E402

H, W = 720, 1280
N = 1_000_000                #: events per kernel window
LOADER_EVENTS = 20_000_000   #: events of the loader comparison's recording
WINDOW_US = 50_000
SHAPES = {"histo": (5, 2), "diff": (5, 1), "event_cube": (5, 6), "stacked_histogram": (1, 20),
          "voxel_grid": (1, 10)}
DTYPES = {"stacked_histogram": np.uint8}


def scattered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, WINDOW_US, n))
    ev["x"] = rng.integers(0, W, n)
    ev["y"] = rng.integers(0, H, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def best(fn, sync, repeat: int = 5) -> float:
    fn()
    sync()
    out = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        out = min(out, time.perf_counter() - start)
    return out


def synchronize(device: torch.device):
    """The wait for ``device``'s queued work (none on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def kernel_rows(device: torch.device) -> tuple[list, bool]:
    rows, ok = [], True
    runs = synthetic_events(N)          # 30 Mev/s: 1 M events span 33 ms < one window
    runs["t"] -= runs["t"][0]
    sources = {"runs": runs, "scattered": scattered(N)}
    for source, ev in sources.items():
        dev_ev = torch_kernels.events_to_torch(ev, device=device)
        for name, (t, c) in SHAPES.items():
            for k in (0, 1):
                dtype = DTYPES.get(name, np.float32)
                shape = (t, c, H >> k, W >> k)
                ref = np.zeros(shape, dtype)
                cpu_fn = getattr(kernels, name)
                gpu_fn = getattr(torch_kernels, name)
                cpu_fn(ev, ref, WINDOW_US, k)
                out = torch.zeros(shape, dtype=torch.from_numpy(ref).dtype, device=device)
                gpu_fn(dev_ev, out, WINDOW_US, k)
                got = out.cpu().numpy()
                same = got.tobytes() == ref.tobytes()
                if not same:
                    ok = False
                    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()
                    print(f"MISMATCH {name} {source} k={k}: max |diff| {diff}", flush=True)
                cpu_s = best(lambda: cpu_fn(ev, ref, WINDOW_US, k), lambda: None, 3)
                gpu_s = best(lambda: gpu_fn(dev_ev, out, WINDOW_US, k), synchronize(device))
                rows.append((name, source, k, same, len(ev) / gpu_s / 1e9, len(ev) / cpu_s / 1e9))
    return rows, ok


def loader_rows(device: torch.device) -> list:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.raw"
        ev = synthetic_events(LOADER_EVENTS, rate_ev_s=9e6)
        with RawWriter(path, H, W, format="evt3") as w:
            w.write(ev)
        n = len(ev)

        def cpu_loader():
            it = CDProcessorIterator(path, "histo", delta_t=WINDOW_US, num_tbins=5, height=360,
                                     width=640)
            for _ in it:
                pass

        def gpu_loader():
            out = torch.zeros((5, 2, 360, 640), dtype=torch.float32, device=device)
            for k, window in enumerate(EventsIterator(path, delta_t=5 * WINDOW_US)):
                window["t"] -= k * 5 * WINDOW_US
                torch_kernels.histo(torch_kernels.events_to_torch(window, device=device), out,
                                    5 * WINDOW_US, 1)
            synchronize(device)()

        for label, fn in (("CPU: CDProcessorIterator (numba)", cpu_loader),
                          (f"{device.type}: CPU decode + torch histo on {device.type}", gpu_loader)):
            rows.append((label, n / best(fn, synchronize(device), 2) / 1e6))
    return rows


def main(argv: list[str]) -> int:
    if "--cpu" in argv:
        device = torch.device("cpu")
        name = f"the CPU (dry run, not GPU figures: {cpu_model()})"
    elif not torch.cuda.is_available():
        print("CUDA is not available: nothing measured (this script is for a GPU machine; "
              "--cpu for a dry run).")
        return 2
    else:
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(0)
    print(f"\n### torch kernels on {name} vs numba on one core of {cpu_model()}\n")
    rows, ok = kernel_rows(device)
    print(f"| function | events | k | bit-identical | torch on {device.type} Gev/s | "
          "numba 1 thread Gev/s |")
    print("|---|---|---|---|---|---|")
    for name, source, k, same, g, c in rows:
        print(f"| {name} | {source} | {k} | {'yes' if same else 'NO'} | {g:.2f} | {c:.3f} |")
    print("\n| loader path (histo [5, 2, 360, 640], 50 ms bins) | Mev/s |")
    print("|---|---|")
    for label, rate in loader_rows(device):
        print(f"| {label} | {rate:.0f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
