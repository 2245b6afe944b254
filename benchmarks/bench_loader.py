"""Throughput of ``SequentialDataLoader`` (prints markdown tables; asserts nothing).

1. Precomputed tensor files: four 1280x720 recordings (synthetic_stream.py, 4 Mev/s) turned into
   360x640 ``histo`` tensor files (50 ms rows, gzip and blosc) by
   ``evstream.preprocessing.hdf5.write_to_hdf5``, each played 3 times in a row (30 batches of
   ``[3, 4, 2, 360, 640]`` per epoch) with ``num_workers`` 0, 1, 2 (new workers every epoch) and
   1, 2 with ``persistent_workers=True`` (the epochs after the first), next to a bare h5py read of
   the very same row slices in the same run (files opened once, ``data[r0:r1]``, no torch).
   Overhead = loader epoch / bare read - 1 (the bare read is single-process). "first batch" is
   the latency to the first batch (worker start included).
2. Recordings read on the fly: the same streams as DAT and RAW EVT 3.0 (each played twice),
   ``histo`` at 360x640, Mev/s end to end (reading + tensor building + batching), next to the
   reader alone (``load_delta_t`` over the same windows), with the same worker configurations.

3. Memory: what each of 2 kept workers wrote itself (``Private_Dirty``) after an epoch of DAT /
   RAW recordings 1x and 4x as long (it should not grow with the recording length).

"vs 1 worker" compares with one worker of the same kind (new or persistent). Best of 3 epochs
for each row, the configurations interleaved (the files are in the page cache). Run:
``python benchmarks/bench_loader.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_stream import synthetic_events  # noqa: E402

from evstream.data import SequentialDataLoader  # noqa: E402
from evstream.io import DatWriter, RawWriter, open_reader  # noqa: E402
from evstream.preprocessing.hdf5 import open_tensor_file, write_to_hdf5  # noqa: E402

DELTA_T = 50_000
NUM_TBINS = 3
BATCH = 4
ARRAY_DIM = [NUM_TBINS, 2, 360, 640]
RATE = 4e6
DURATION_S = 1.5
REPEAT = 3


def best_of(fn, repeat=REPEAT) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_recordings(folder: str, n_files: int, duration_s: float = DURATION_S
                    ) -> tuple[list[str], list[str], int]:
    """DAT and RAW EVT 3.0 copies of ``n_files`` synthetic streams of ``duration_s``; returns
    (dats, raws, events)."""
    dats, raws, total = [], [], 0
    for i in range(n_files):
        ev = synthetic_events(int(RATE * duration_s), rate_ev_s=RATE, seed=i)
        total += len(ev)
        dat = os.path.join(folder, f"rec{i}_td.dat")
        with DatWriter(dat, height=720, width=1280) as w:
            w.write(ev)
        raw = os.path.join(folder, f"rec{i}.raw")
        writer = RawWriter(raw, 720, 1280, "evt3")
        writer.write(ev)
        writer.close()
        dats.append(dat)
        raws.append(raw)
    return dats, raws, total


def epoch(loader) -> tuple[int, int, float]:
    """Iterates one epoch; returns (batches, bytes of inputs, seconds to the first batch)."""
    n = nbytes = 0
    start = time.perf_counter()
    first = None
    for batch in loader:
        if first is None:
            first = time.perf_counter() - start
        n += 1
        nbytes += batch["inputs"].numel() * batch["inputs"].element_size()
    return n, nbytes, first


def bare_h5_epoch(loader) -> int:
    """The row slices the loader reads, with h5py only (files opened once)."""
    files = {}
    nbytes = 0
    scheduler = loader.dataset.scheduler
    for n in range(len(scheduler)):
        meta, start, duration = scheduler[n]
        if meta.is_padding():
            continue
        f = files.get(meta.path)
        if f is None:
            f = files[meta.path] = open_tensor_file(meta.path)
        rows = f["data"][start // DELTA_T:(start + duration) // DELTA_T]
        nbytes += rows.nbytes
    for f in files.values():
        f.close()
    return nbytes


def reader_only(paths: list[str], loader) -> int:
    """Events of the loader's windows, read with load_delta_t only."""
    readers = {p: open_reader(p) for p in paths}
    events = 0
    scheduler = loader.dataset.scheduler
    for n in range(len(scheduler)):
        meta, start, duration = scheduler[n]
        if meta.is_padding():
            continue
        r = readers[meta.path]
        if r.current_time != start:
            r.seek_time(start)
        events += len(r.load_delta_t(duration))
    return events


def played_events(paths: list[str], loader) -> int:
    played = {}
    for n in range(len(loader.dataset.scheduler)):
        meta, start, duration = loader.dataset.scheduler[n]
        if not meta.is_padding():
            played[meta.path] = max(played.get(meta.path, 0), start + duration)
    total = 0
    for p in paths:
        t = open_reader(p).read_all()["t"]
        total += int(np.count_nonzero(t < played.get(p, 0)))
    return total


def private_dirty_mib(pid: int) -> float:
    """Memory process ``pid`` wrote itself (``Private_Dirty`` of ``/proc/pid/smaps_rollup``:
    its own allocations and the inherited pages it copied), MiB (Linux)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no Private_Dirty in /proc/pid/smaps_rollup: Linux only")


def worker_memory(folder: str) -> None:
    """Memory of each of 2 kept workers after an epoch, recordings 1x and 4x as long."""
    print(f"\nMemory of each worker (MiB written by the worker itself: Private_Dirty of "
          f"smaps_rollup, read after one epoch while the kept workers hold their buffers), "
          f"2 persistent workers, {BATCH} recordings of {DURATION_S} s and of "
          f"{4 * DURATION_S} s:\n")
    print("| input | recordings | batches | per worker MiB |")
    print("|---|---|---|---|")
    for factor in (1, 4):
        sub = os.path.join(folder, f"x{factor}")
        os.makedirs(sub)
        dats, raws, _ = make_recordings(sub, BATCH, DURATION_S * factor)
        for kind, files in (("DAT", dats), ("RAW EVT 3.0", raws)):
            loader = SequentialDataLoader(files, DELTA_T, "histo", ARRAY_DIM, batch_size=BATCH,
                                          num_workers=2, persistent_workers=True)
            n = epoch(loader)[0]
            own = [private_dirty_mib(w.pid) for w in loader._crew.iterator._workers]
            loader.close()
            print(f"| {kind} | {BATCH} x {DURATION_S * factor:g} s | {n} | "
                  f"{', '.join(f'{m:.0f}' for m in own)} |")
        for path in dats + raws:
            os.remove(path)


#: (num_workers, persistent_workers) of the rows of each input
CONFIGS = ((0, False), (1, False), (2, False), (1, True), (2, True))


def config_name(workers: int, persistent: bool) -> str:
    return f"{workers}, persistent" if persistent else str(workers)


def timed_epochs(loaders: dict, extra=None) -> dict:
    """Best epoch of each loader (``{key: loader}``), the repetitions interleaved so that the
    load of a shared machine hits all rows alike; a loader with persistent workers plays one
    epoch first (its rows are the epochs after the first, with the workers kept). ``extra``:
    ``{key: fn}`` timed alike (baselines). Returns ``{key: (seconds, result)}``."""
    for loader in loaders.values():
        if loader.persistent_workers:
            epoch(loader)
    timed = {**{k: (lambda loader=loader: epoch(loader)) for k, loader in loaders.items()},
             **(extra or {})}
    best = {}
    for _ in range(REPEAT):
        for key, fn in timed.items():
            seconds, result = best_of(fn, repeat=1)
            if seconds < best.get(key, (float("inf"),))[0]:
                best[key] = (seconds, result)
    for loader in loaders.values():
        loader.close()
    return best


def vs_one_worker(best: dict, name: str, workers: int, persistent: bool) -> str:
    if workers == 0:
        return ""
    return f"x{best[name, 1, persistent][0] / best[name, workers, persistent][0]:.2f}"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="evstream_bench_loader_") as tmp:
        t0 = time.perf_counter()
        dats, raws, total_events = make_recordings(tmp, BATCH)
        h5s = {}
        for compression in ("gzip", "blosc"):
            out = os.path.join(tmp, compression)
            h5s[compression] = [write_to_hdf5(d, output_folder=out, delta_t=DELTA_T, preprocess="histo",
                                              height=360, width=640, compression=compression).outputs[0]
                                for d in dats]
        print(f"\n### SequentialDataLoader throughput\n\n{BATCH} synthetic 1280x720 recordings of "
              f"{DURATION_S} s at {RATE / 1e6:.0f} Mev/s ({total_events / 1e6:.1f} M events), "
              f"batches [{NUM_TBINS}, {BATCH}, 2, 360, 640] float32 of {DELTA_T // 1000} ms bins; "
              f"data made in {time.perf_counter() - t0:.1f} s; best of {REPEAT} epochs, "
              f"configurations interleaved; 'persistent': persistent_workers=True, the epochs "
              f"after the first.\n")

        print("| input | num_workers | batches/s | MB/s | first batch (ms) | epoch (s) | vs 1 worker | bare h5py read (s) | overhead |")
        print("|---|---|---|---|---|---|---|---|---|")
        loaders, extra = {}, {}
        for compression, files in h5s.items():
            for workers, persistent in CONFIGS:
                loaders[compression, workers, persistent] = SequentialDataLoader(
                    files * 3, DELTA_T, "histo", ARRAY_DIM, batch_size=BATCH, num_workers=workers,
                    persistent_workers=persistent)
            probe = loaders[compression, 0, False]
            extra[compression, "bare"] = lambda probe=probe: bare_h5_epoch(probe)
        best = timed_epochs(loaders, extra)
        for (compression, workers, persistent) in loaders:
            seconds, (n, nbytes, first) = best[compression, workers, persistent]
            bare_s = best[compression, "bare"][0]
            print(f"| .h5 {compression} | {config_name(workers, persistent)} | {n / seconds:.1f} | "
                  f"{nbytes / seconds / 1e6:.0f} | {first * 1e3:.0f} | {seconds:.3f} | "
                  f"{vs_one_worker(best, compression, workers, persistent)} | {bare_s:.3f} | "
                  f"{(seconds / bare_s - 1) * 100:+.1f} % |")

        print("\n| input | num_workers | batches/s | Mev/s end to end | first batch (ms) | epoch (s) | vs 1 worker | reader alone (Mev/s) |")
        print("|---|---|---|---|---|---|---|---|")
        for kind, files in (("DAT", dats), ("RAW EVT 3.0", raws)):
            files = files * 2
            probe = SequentialDataLoader(files, DELTA_T, "histo", ARRAY_DIM, batch_size=BATCH,
                                         num_workers=0)
            events = played_events(files, probe)
            loaders = {(kind, workers, persistent): SequentialDataLoader(
                files, DELTA_T, "histo", ARRAY_DIM, batch_size=BATCH, num_workers=workers,
                persistent_workers=persistent) for workers, persistent in CONFIGS}
            best = timed_epochs(loaders, {(kind, "reader"): lambda: reader_only(files, probe)})
            read_s = best[kind, "reader"][0]
            for (_, workers, persistent) in loaders:
                seconds, (n, _, first) = best[kind, workers, persistent]
                print(f"| {kind} | {config_name(workers, persistent)} | {n / seconds:.1f} | "
                      f"{events / seconds / 1e6:.1f} | {first * 1e3:.0f} | {seconds:.3f} | "
                      f"{vs_one_worker(best, kind, workers, persistent)} | "
                      f"{events / read_s / 1e6:.1f} |")

        worker_memory(tmp)


if __name__ == "__main__":
    main()
