"""The fused RAW EVT 3.0 / 2.0 -> tensor path against the unfused one (decode the EventCD window, then
the registry function), in the same run (prints markdown tables; asserts nothing).

Workload: bench_stream.py's recordings (1280x720 RAW EVT 3.0 at ~9 Mev/s, a 1 s synthetic block
tiled in time), ``histo`` / ``diff`` / ``stacked_histogram`` at 640x360 (sensor halved in the event
domain), 50 ms bins, T = 5, B = 4.

1. One recording (EVT 3.0, and its EVT 2.0 conversion) through
   ``CDProcessorIterator.next_chunk`` (one thread, no loader): Mev/s per representation,
   unfused vs fused, and the tensors compared byte for byte.
2. ``CDProcessorDataLoader`` end to end (decode + tensorize + IPC + collate), 1 and 2 workers,
   fused and unfused (``EVSTREAM_FUSED=0``), and peak RSS per worker for recordings 1x and 4x as
   long.

Every configuration runs ``REPEAT`` times, interleaved (the machine is shared); the best run is
shown. Table 1 also gives the thread CPU time (``time.thread_time``), which depends much less on
the other jobs of a shared machine than the wall time.
Run: ``python benchmarks/bench_fused.py [SECONDS [REPEAT]]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_stream  # noqa: E402
from bench_peers import cpu_model  # noqa: E402

from evstream.data.cd_processor_dataset import CDProcessorDataLoader  # noqa: E402
from evstream.data.cd_processor_iterator import CDProcessorIterator  # noqa: E402
from evstream.io import RawWriter, RawReader  # noqa: E402

NAMES = ("histo", "diff", "stacked_histogram")


def set_fused(on: bool) -> None:
    os.environ["EVSTREAM_FUSED"] = "1" if on else "0"


def iterate(path: str, name: str, fused: bool) -> tuple[float, int, list]:
    set_fused(fused)
    it = CDProcessorIterator(path, name, delta_t=bench_stream.DELTA_T, num_tbins=bench_stream.T,
                             height=bench_stream.OUT[0], width=bench_stream.OUT[1])
    assert (it._fused is not None) == fused
    out = np.empty((bench_stream.T, it.cin) + bench_stream.OUT, np.float32)
    digests = []
    seconds = cpu = 0.0
    while True:
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            it.next_chunk(out)
        except StopIteration:
            break
        seconds += time.perf_counter() - start
        cpu += time.thread_time() - start_cpu
        digests.append(hash(out.tobytes()))        # not timed
    it.close()
    return (seconds, cpu), it.stats["events"], digests


def loader_epoch(paths, workers: int, fused: bool, name: str = "histo"):
    set_fused(fused)
    loader = CDProcessorDataLoader(paths, "delta_t", bench_stream.DELTA_T, 0, None, name,
                                   bench_stream.T, bench_stream.B, num_workers=workers,
                                   height=bench_stream.OUT[0], width=bench_stream.OUT[1])
    start = time.perf_counter()
    batches = sum(1 for _ in loader)
    wall = time.perf_counter() - start
    ws = [x for x in loader.stats["workers"] if x]
    events = sum(x.get("events", 0) for x in ws)
    rss = max(x["peak_rss_mb"] - x["rss_start_mb"] for x in ws)
    return wall, batches, events, rss


def main(seconds: int = 3, repeat: int = 3) -> None:
    saved = bench_stream.SECONDS, bench_stream.N_FILES
    try:
        _main(seconds, repeat)
    finally:
        bench_stream.SECONDS, bench_stream.N_FILES = saved     # bench_stream's own run


def _main(seconds: int, repeat: int) -> None:
    torch.set_num_threads(1)
    bench_stream.SECONDS = seconds
    print(f"\n### Fused RAW EVT 3.0 / 2.0 -> tensor vs decode + tensorize, {cpu_model()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        paths, n_events = bench_stream.write_recordings(tmp)
        long_dir = os.path.join(tmp, "long")
        os.mkdir(long_dir)
        bench_stream.SECONDS = 4 * seconds
        bench_stream.N_FILES, n_files = 2, bench_stream.N_FILES
        long_paths, _ = bench_stream.write_recordings(long_dir)
        bench_stream.N_FILES = n_files
        evt2 = os.path.join(tmp, "drive_0_evt2.raw")   # the first recording in EVT 2.0
        with RawReader(paths[0], do_time_shifting=False) as r, \
                RawWriter(evt2, *bench_stream.SENSOR, "evt2") as w:
            w.write(r.read_all())
        sources = {"EVT 3.0": paths[0], "EVT 2.0": evt2}
        for name in NAMES:                       # JIT warm-up of both paths
            for fused in (False, True):
                for source in sources.values():
                    iterate(source, name, fused)

        best = {}
        same = {}
        for _ in range(repeat):
            for label, source in sources.items():
                for name in NAMES:
                    digests = {}
                    for fused in (False, True):
                        (s, c), n, digests[fused] = iterate(source, name, fused)
                        key = (label, name, fused)
                        old = best.get(key, (float("inf"), float("inf"), n))
                        best[key] = min(old[0], s), min(old[1], c), n
                    same[(label, name)] = digests[False] == digests[True]
        n0 = best[("EVT 3.0", "histo", False)][2]
        print(f"#### One recording ({seconds} s, {n0 / 1e6:.1f} M events), "
              f"CDProcessorIterator.next_chunk, one thread, best of {repeat}\n")
        print("| encoding | representation | unfused Mev/s | fused Mev/s | speed-up | unfused "
              "Mev per CPU s | fused Mev per CPU s | speed-up (CPU time) | tensors identical |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label in sources:
            for name in NAMES:
                (su, cu, n), (sf, cf, _) = best[(label, name, False)], best[(label, name, True)]
                print(f"| {label} | {name} | {n / su / 1e6:.0f} | {n / sf / 1e6:.0f} | "
                      f"x{su / sf:.2f} | {n / cu / 1e6:.0f} | {n / cf / 1e6:.0f} | x{cu / cf:.2f} | "
                      f"{'yes' if same[(label, name)] else 'NO'} |")

        runs = {}
        configs = [(w, f, "1x") for w in (1, 2) for f in (False, True)] + \
                  [(1, f, "4x") for f in (False, True)]
        for _ in range(repeat):
            for workers, fused, length in configs:
                r = loader_epoch(paths if length == "1x" else long_paths, workers, fused)
                key = (workers, fused, length)
                if key not in runs or r[0] < runs[key][0]:
                    runs[key] = r
    print(f"\n#### CDProcessorDataLoader, histo [T={bench_stream.T}, B={bench_stream.B}, 2, "
          f"{bench_stream.OUT[0]}, {bench_stream.OUT[1]}], best of {repeat}\n")
    print("| workers | recordings | path | wall s | batches | Mev/s | vs unfused | vs 1 worker "
          "(same path) | peak RSS growth per worker MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (workers, fused, length), (wall, batches, events, rss) in runs.items():
        base = runs[(workers, False, length)]
        one = runs.get((1, fused, length))
        label = f"{n_files} x {seconds} s" if length == "1x" else f"2 x {4 * seconds} s"
        print(f"| {workers} | {label} | {'fused' if fused else 'unfused'} | {wall:.2f} | {batches} | "
              f"{events / wall / 1e6:.0f} | x{base[0] / wall:.2f} | "
              f"{'' if one is None else f'x{one[0] / wall * events / one[2]:.2f}'} | {rss:.0f} |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
