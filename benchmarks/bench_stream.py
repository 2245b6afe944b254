"""Streaming recordings into batches on the fly: CDProcessorDataLoader throughput (prints markdown
tables; asserts nothing).

Workload, sized like the 1 Mpx automotive dataset: ``N_FILES`` RAW EVT 3.0 recordings of
``SECONDS`` s, 1280x720, about 9 Mev/s on average, written with evstream's RawWriter. A 1 s block of
``benchmarks/synthetic_stream.py`` events (runs of neighbouring pixels, sorted) is generated once
and tiled in time (decode and tensorize costs do not depend on the content repeating). The
loader reads them with ``histo`` (2 channels), 50 ms bins, T = 5, B = 4, tensors 640x360 (the
sensor halved in the event domain), float32 ``[5, 4, 2, 360, 640]`` batches.

Tables:

1. Per-stage cost in one process (``num_workers=0``): decode (RAW -> EventCD windows) and tensorize
   (histogram + copy into the item tensor), one stage when the loader takes the fused path
   (:mod:`evstream.preprocessing.fused`, the default for RAW EVT 3.0 histo), labels (the stub), collate (numpy stack into the
   batch), and the hand-over from a worker to the main process (IPC), measured with a streamer
   that does no work: items written in place into the loader's shared batch arrays (what
   ``CDProcessorDataLoader``'s workers do, ``batch_output``), items in the shared-memory ring
   copied into the batch, and, for comparison, torch's default tensor transfer. "Mev/s" =
   events of the workload / time of that stage alone.
2. End to end with 0, 1 and 2 workers: wall time of a full epoch (all files), Mev/s, multiple of
   real time (recording seconds per wall second), the time until the first batch (worker start,
   first file openings) and the rate after it (what a long epoch runs at), per-worker time
   split and peak RSS. The same with 1 and 2 workers for the loader's second epoch (its
   once-only start behind it: the item computed before the first fork, the shared batch
   arrays), with new workers and with the first epoch's (``persistent_workers=True``). Also
   one worker on the first third of each recording (``max_duration``), to show
   that memory depends on the window, not on the recording length.

Machine: see the first line of ``benchmarks/run.py``'s output; 2 cores here, shared with other
jobs, so the numbers vary between runs: the configurations run three times, interleaved, and
the fastest run of each is shown; the CPU-time column (Mev per CPU second of the worker
processes) depends less on the other jobs. Run: ``python benchmarks/bench_stream.py``.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_stream import synthetic_events  # noqa: E402

from evstream.data.cd_processor_dataset import CDProcessorDataLoader, collate_fn  # noqa: E402
from evstream.data.stream import StreamDataLoader, StreamDataset, stream_output  # noqa: E402
from evstream.io import RawWriter  # noqa: E402

N_FILES = 4
SECONDS = 6
RATE = 9e6
SENSOR = (720, 1280)
OUT = (360, 640)
DELTA_T = 50_000
T = 5
B = 4
CIN = 2
#: every configuration runs this many times; the fastest run is reported
REPEAT = 3


def write_recordings(folder: str) -> tuple[list[str], int]:
    block = synthetic_events(int(RATE), height=SENSOR[0], width=SENSOR[1], rate_ev_s=RATE, seed=0)
    block = block[block["t"] < 1_000_000]
    paths = []
    for i in range(N_FILES):
        path = os.path.join(folder, f"drive_{i}.raw")
        with RawWriter(path, SENSOR[0], SENSOR[1], "evt3") as w:
            for k in range(SECONDS):
                part = block.copy()
                part["t"] += k * 1_000_000 + i * 1_000
                w.write(part)
        with open(path, "rb") as f:            # page cache
            while f.read(1 << 24):
                pass
        paths.append(path)
    return paths, len(block) * SECONDS * N_FILES


def make_loader(paths, workers, max_duration=None, persistent=False):
    return CDProcessorDataLoader(paths, "delta_t", DELTA_T, 0, max_duration, "histo", T, B,
                                 num_workers=workers, height=OUT[0], width=OUT[1],
                                 persistent_workers=persistent)


def run_epoch(loader) -> tuple[float, int, float]:
    """(wall s of the epoch, batches, s until the first batch)."""
    start = time.perf_counter()
    first = None
    batches = 0
    for _ in loader:
        batches += 1
        if first is None:
            first = time.perf_counter() - start
    return time.perf_counter() - start, batches, first or 0.0


def reset_peak_rss() -> None:
    """Start this process's peak RSS (VmHWM, the 0-worker row's figure) again from its current
    RSS, so that it does not carry the benchmarks run before in the same process."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def null_streamer(stream, steps, ring):
    """Items shaped like the real ones, with no decoding or tensorizing."""
    for i in range(steps):
        out = stream_output((T, CIN) + OUT) if ring else torch.empty((T, CIN) + OUT)
        yield (out, [torch.empty(0)] * T, float(i > 0), np.zeros(T, bool), (None, 0, 0))


def ipc_cost(steps: int, ring: bool, in_place: bool = False) -> tuple[float, float]:
    """(hand-over ms per batch, collate ms per batch) with one worker that does no work;
    ``in_place``: the items written into the loader's shared batch arrays (``batch_output``)."""
    fill = (torch.zeros((T, CIN) + OUT), [torch.empty(0)] * T, 0.0, np.zeros(T, bool),
            (None, 0, 0))
    dataset = StreamDataset(list(range(B)), partial(null_streamer, steps=steps, ring=ring), B,
                            "zeros", fill)
    loader = StreamDataLoader(dataset, 1, collate_fn,
                              batch_output=((T, CIN) + OUT, torch.float32) if in_place else None)
    wall, batches, _ = run_epoch(loader)
    collate = loader.stats["main"]["collate_s"]
    return (wall - collate) / batches * 1e3, collate / batches * 1e3


def main() -> None:
    torch.set_num_threads(1)
    print(f"Writing {N_FILES} synthetic EVT 3.0 recordings of {SECONDS} s at ~{RATE / 1e6:.0f} "
          f"Mev/s ({SENSOR[1]}x{SENSOR[0]}) ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths, n_events = write_recordings(tmp)
        gc.collect()
        mib = sum(os.path.getsize(p) for p in paths) / 2**20
        recorded_s = SECONDS * N_FILES
        rate = n_events / recorded_s
        make_loader(paths[:1], 0, max_duration=T * DELTA_T).__iter__().__next__()   # JIT warm-up

        runs = {}
        # (label, workers, max_duration, epochs run before the timed one on the same loader,
        # persistent workers)
        configs = (("0 (main process)", 0, None, 0, False), ("1", 1, None, 0, False),
                   ("2", 2, None, 0, False), ("1, second epoch", 1, None, 1, False),
                   ("2, second epoch", 2, None, 1, False),
                   ("1, second epoch, persistent workers", 1, None, 1, True),
                   ("2, second epoch, persistent workers", 2, None, 1, True),
                   ("1, first third of each file", 1, SECONDS * 1_000_000 // 3, 0, False))
        ipc = {"in place": [], "ring": [], "torch": []}
        for _ in range(REPEAT):        # interleaved, so that load changes hit every config
            for label, workers, max_duration, before, persistent in configs:
                loader = make_loader(paths, workers, max_duration, persistent)
                for _ in range(before):
                    run_epoch(loader)
                if workers == 0:
                    reset_peak_rss()
                wall, batches, first = run_epoch(loader)
                loader.close()
                if label not in runs or wall < runs[label][2]:
                    runs[label] = (workers, max_duration, wall, batches, loader.stats, first,
                                   (before, persistent))
            for kind in ipc:
                ipc[kind].append(ipc_cost(40, ring=kind != "torch", in_place=kind == "in place"))
        place_ipc, place_collate = min(ipc["in place"])
        ring_ipc, ring_collate = min(ipc["ring"])
        torch_ipc, torch_collate = min(ipc["torch"])

    print(f"\n### Streaming RAW EVT 3.0 -> histo batches [T={T}, B={B}, C={CIN}, {OUT[0]}, "
          f"{OUT[1]}] float32, {DELTA_T // 1000} ms bins\n")
    print(f"Workload: {N_FILES} recordings x {SECONDS} s, {n_events / 1e6:.0f} M events "
          f"({rate / 1e6:.1f} Mev/s average), {mib:.0f} MiB of EVT 3.0 in the page cache.\n")

    workers, _, wall, batches, stats, _, _ = runs["0 (main process)"]
    w = stats["workers"][0]
    m = stats["main"]
    other = max(w["produce_s"] - w["decode_s"] - w["tensorize_s"] - w["labels_s"], 0.0)
    print("#### Per-stage cost, one process (num_workers=0)\n")
    print("| stage | s per epoch | ms per batch | Mev/s for this stage alone |")
    print("|---|---|---|---|")
    if w["decode_s"] > 0:
        stages = (("decode (RAW EVT 3.0 -> EventCD, 250 ms windows)", w["decode_s"]),
                  ("tensorize (histo at 640x360 + copy into the item)", w["tensorize_s"]))
    else:       # the fused path (evstream.preprocessing.fused): one stage, counted as tensorize
        stages = (("decode + tensorize, fused (RAW EVT 3.0 words -> histo at 640x360, + copy "
                   "into the item)", w["tensorize_s"]),)
    stages += (("labels (stub)", w["labels_s"]), ("slot bookkeeping, item assembly", other),
               ("collate (numpy stack into [T, B, C, H, W])", m["collate_s"]))
    for name, seconds in stages:
        print(f"| {name} | {seconds:.2f} | {seconds / batches * 1e3:.1f} | "
              f"{n_events / max(seconds, 1e-9) / 1e6:.0f} |")
    for name, per_batch in (("IPC, items written in place into the shared batch arrays "
                             "(worker -> main, per batch of 4 items)", place_ipc),
                            ("IPC, shared-memory ring, copied into the batch", ring_ipc),
                            ("IPC, torch's default tensor transfer (for comparison)", torch_ipc)):
        seconds = per_batch * batches / 1e3
        print(f"| {name} | {seconds:.2f} | {per_batch:.1f} | "
              f"{n_events / max(seconds, 1e-9) / 1e6:.0f} |")
    print(f"| **total in one process** | {wall:.2f} | {wall / batches * 1e3:.1f} | "
          f"{n_events / wall / 1e6:.0f} |")
    print(f"\n(Collate in the IPC runs: {place_collate:.1f} ms per batch for items written in "
          f"place (what CDProcessorDataLoader's workers do), {ring_collate:.1f} ms from ring "
          f"buffers, {torch_collate:.1f} ms from tensors received the default way. IPC = wall "
          f"time per batch of a worker that does no work, minus collate.)\n")

    print("#### End to end (decode + tensorize + IPC + collate), full epoch\n")
    print("| workers | wall s | batches | Mev/s | x real time | vs 1 worker | first batch s | "
          "after the first: batches/s, vs 1 worker | Mev per worker CPU s | main: waiting / "
          "collating s | per worker: producing / ring wait / handing over s | peak RSS per "
          "worker MiB (at start) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    bases = {}      # (epochs before, persistent) -> (Mev/s, batches/s after the first), 1 worker
    for label, (workers, max_duration, wall, batches, stats, first, kind) in runs.items():
        events = sum(x.get("events", 0) for x in stats["workers"] if x)
        mev = events / wall / 1e6
        steady = (batches - 1) / max(wall - first, 1e-9)
        seconds_played = events / rate
        if workers == 1 and max_duration is None:
            bases[kind] = (mev, steady)
        compare = kind in bases and workers > 0 and not max_duration
        base, base_steady = bases.get(kind, (1.0, 1.0))
        speedup = f"{mev / base:.2f}x" if compare else ""
        steady_vs = f", {steady / base_steady:.2f}x" if compare else ""
        ws = [x for x in stats["workers"] if x]
        split = ", ".join(f"{x['produce_s']:.2f} / {x.get('ring_wait_s', 0):.2f} / "
                          f"{x['outside_s']:.2f}" for x in ws)
        rss = ", ".join(f"{x['peak_rss_mb']:.0f} ({x['rss_start_mb']:.0f})" for x in ws)
        m = stats["main"]
        cpu = sum(x.get("cpu_s", 0) for x in ws)
        print(f"| {label} | {wall:.2f} | {batches} | {mev:.1f} | {seconds_played / wall:.1f} | "
              f"{speedup} | {first:.2f} | {steady:.1f}{steady_vs} | "
              f"{events / max(cpu, 1e-9) / 1e6:.0f} | {m['wait_s']:.2f} / "
              f"{m['collate_s']:.2f} | {split} | {rss} |")
    print("\nWorkers are forked from the benchmark process, so their RSS at start already "
          "counts its pages; the growth is what one worker uses (decode window, item ring, "
          "per-recording processor arrays). 'x real time' = seconds of recording per second. "
          "'Second epoch': the loader's second iteration, timed alone (what every epoch after "
          "the first costs in training): the loader's once-only start, the item computed "
          "before the first fork and the shared batch arrays, is behind it; its 'vs 1 worker' "
          "compares with one worker's second epoch. 'Persistent workers': "
          "persistent_workers=True, the workers of the first epoch serve the second (they "
          "keep the shared batch arrays mapped); compared with one persistent worker.")


if __name__ == "__main__":
    main()
