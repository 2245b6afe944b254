"""Decoding throughput of evstream's readers (prints markdown tables; asserts nothing).

A 30 M-event 1280x720 synthetic stream (see synthetic_stream.py) is written as RAW EVT 3.0,
RAW EVT 2.0, RAW EVT 2.1 (legacy layout, as IMX636 cameras write it), RAW EVT 3.0 with one
external trigger per 1,000 events, and DAT with evstream's writers, read once to put it in the
page cache, then:

* whole file: ``load_events`` (best of 3);
* streaming: ``EventsIterator`` in 50 ms windows over the whole file (best of 2), and its
  ratio to the whole-file speed;
* peak RSS of a fresh process that streams the EVT 3.0 file in 50 ms windows;
* baselines measured in the same run: a vectorised numpy DAT decoder and a plain copy of the
  decoded events (the memory-bound ceiling of producing 16-byte EventCD records);
* count reads of the RAW files, ``load_events(path, ev_count=N)`` for N = 1 M and half the
  file, on one thread and on one per CPU (``RawReader.read_first``), interleaved, best of 3,
  each call with no seek index in memory (a file not read before);
* the real recordings of shared/samples decoded whole, repeatedly.

Whole-file reads of RAW decode on one thread per CPU (``evstream.io.raw_parallel``; the file's
seek index is in memory after the first of the 3 reads, so the parts land in place); DAT decodes
on one thread with the page-warming thread of ``load_events`` (``evstream.utils.page_warmer``).
The windows decode on one thread, without warming.
Run: ``python benchmarks/bench_io.py [N]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_stream import synthetic_events  # noqa: E402

from evstream.io import (DatWriter, EventCD, EventExtTrigger, EventsIterator,  # noqa: E402
                         RawReader, RawWriter, load_events)
from evstream.io import raw_parallel  # noqa: E402
from evstream.io.raw import COMPLETE_INDEXES  # noqa: E402

#: benchmark streams: name -> (file name, writer format, EVT 2.1 layout, triggers every N events)
STREAMS = {"RAW EVT 3.0": ("stream_evt3.raw", "evt3", "little", 0),
           "RAW EVT 3.0 + triggers (1 per 1,000 events)": ("stream_evt3_tr.raw", "evt3", "little", 1000),
           "RAW EVT 2.0": ("stream_evt2.raw", "evt2", "little", 0),
           "RAW EVT 2.1 (legacy layout)": ("stream_evt21.raw", "evt21", "legacy", 0),
           "DAT": ("stream.dat", "dat", "", 0)}

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"
WINDOW_US = 50_000
#: peak resident memory of the current process in MiB (VmHWM, which, unlike ru_maxrss, does not
#: inherit the parent's peak across fork + exec)
PRINT_PEAK_RSS = ("print(int(next(l for l in open('/proc/self/status') "
                  "if l.startswith('VmHWM')).split()[1]) / 1024)")


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def numpy_dat_decode(path: Path, n_events: int) -> np.ndarray:
    data = np.fromfile(path, dtype="<u4", offset=os.path.getsize(path) - 8 * n_events)
    t, word = data[0::2], data[1::2]
    out = np.empty(n_events, dtype=EventCD)
    out["t"] = t
    out["x"] = word & 0x3FFF
    out["y"] = (word >> 14) & 0x3FFF
    out["p"] = (word >> 28) & 1
    return out


def stream_all(path: Path) -> int:
    return sum(len(w) for w in EventsIterator(path, delta_t=WINDOW_US))


def streaming_peak_rss_mb(path: Path) -> float:
    code = ("from evstream.io import EventsIterator\n"
            f"n = sum(len(w) for w in EventsIterator({str(path)!r}, delta_t={WINDOW_US}))\n"
            + PRINT_PEAK_RSS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def baseline_rss_mb() -> float:
    code = "import evstream.io\n" + PRINT_PEAK_RSS
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def count_read_rows(paths: dict, n_events: int, rounds: int = 3) -> list[tuple]:
    """(format, N, one-thread Mev/s, threaded Mev/s) of ``load_events(path, ev_count=N)``."""
    def count_read(path: Path, n: int, threads: int | None) -> int:
        COMPLETE_INDEXES.clear()
        raw_parallel.READ_ALL_THREADS = threads
        try:
            return len(load_events(path, ev_count=n))
        finally:
            raw_parallel.READ_ALL_THREADS = None
    rows = []
    for fmt in ("evt3", "evt2", "evt21"):
        for n in (1_000_000, n_events // 2):
            best = {1: 0.0, None: 0.0}
            for _ in range(rounds + 1):                 # the first round warms up
                for threads in best:
                    start = time.perf_counter()
                    assert count_read(paths[fmt], n, threads) == n
                    best[threads] = max(best[threads], n / (time.perf_counter() - start) / 1e6)
            rows.append((fmt, n, best[1], best[None]))
    return rows


def main(n_events: int = 30_000_000) -> None:
    print(f"Generating {n_events:,} synthetic 1280x720 events ...", flush=True)
    events = synthetic_events(n_events)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, (file_name, fmt, layout, trigger_every) in STREAMS.items():
            path = Path(tmp) / file_name
            start = time.perf_counter()
            if fmt == "dat":
                with DatWriter(path, 720, 1280) as w:
                    w.write(events)
            else:
                triggers = None
                if trigger_every:
                    triggers = np.zeros(n_events // trigger_every, dtype=EventExtTrigger)
                    triggers["t"] = events["t"][::trigger_every][:len(triggers)]
                with RawWriter(path, 720, 1280, format=fmt, evt21_layout=layout) as w:
                    w.write(events, triggers)
            write_s = time.perf_counter() - start
            path.read_bytes()  # page cache
            paths[fmt if not trigger_every else fmt + "_triggers"] = path
            whole_s = best_time(lambda: load_events(path), 3)
            assert np.array_equal(load_events(path), events)
            stream_s = best_time(lambda: stream_all(path), 2)
            rows.append((name, os.path.getsize(path) / 2**20, n_events / whole_s / 1e6,
                         n_events / stream_s / 1e6, whole_s / stream_s, n_events / write_s / 1e6))
        numpy_s = best_time(lambda: numpy_dat_decode(paths["dat"], n_events), 3)
        copy_s = best_time(lambda: events.view(np.uint8).copy(), 3)
        rss = streaming_peak_rss_mb(paths["evt3"])
        small = Path(tmp) / "small_evt3.raw"
        with RawWriter(small, 720, 1280, format="evt3") as w:
            w.write(events[:n_events // 10])
        rss_small = streaming_peak_rss_mb(small)
        COMPLETE_INDEXES.clear()   # the reads above left the file's index in memory
        reader = RawReader(paths["evt3"])
        start = time.perf_counter()
        reader.event_count()  # one full pass builds the seek index
        index_s = time.perf_counter() - start
        rng = np.random.default_rng(0)
        targets = rng.integers(0, int(events["t"][-1]), 200)
        start = time.perf_counter()
        for t in targets:
            reader.seek_time(int(t))
            reader.load_n_events(1000)
        seek_ms = (time.perf_counter() - start) / len(targets) * 1e3
        counts = count_read_rows(paths, n_events)
        rss_base = baseline_rss_mb()
        evt3_mb = os.path.getsize(paths["evt3"]) / 2**20

    print(f"\n### Decoding, {n_events:,} events 1280x720, file in page cache (whole file: RAW on "
          f"one thread per CPU, DAT on one plus the page-warming thread; windows: one thread)\n")
    print("| format | file MiB | whole file Mev/s | 50 ms windows Mev/s | windowed / whole | "
          "write Mev/s |")
    print("|---|---|---|---|---|---|")
    for name, mib, whole, stream, ratio, write in rows:
        print(f"| {name} | {mib:.0f} | {whole:.0f} | {stream:.0f} | {ratio:.0%} | {write:.0f} |")
    print(f"| baseline: numpy vectorised DAT decode | | {n_events / numpy_s / 1e6:.0f} | | | |")
    print(f"| baseline: copy of the decoded EventCD array (memory bound) | | "
          f"{n_events / copy_s / 1e6:.0f} | | | |")
    print(f"\nStreaming EVT 3.0 in 50 ms windows, peak RSS of the process: {rss:.0f} MiB for the "
          f"{evt3_mb:.0f} MiB file, {rss_small:.0f} MiB for its first tenth (a process that only "
          f"imports evstream.io: {rss_base:.0f} MiB).")
    print(f"Seek index of the EVT 3.0 file built in {index_s:.2f} s (one decode pass, the in-memory index of the reads before cleared); then a random "
          f"seek_time + load_n_events(1000) takes {seek_ms:.2f} ms on average.")

    print("\n### Count reads, `load_events(path, ev_count=N)` of the same RAW files, no seek "
          "index in memory, best of 3 interleaved\n")
    print("| format | N | one thread Mev/s | one thread per CPU Mev/s | ratio |")
    print("|---|---|---|---|---|")
    for fmt, n, one, many in counts:
        print(f"| {fmt} | {n:,} | {one:.0f} | {many:.0f} | x{many / one:.2f} |")

    print("\n### Real recordings (shared/samples), whole-file decode, best of 5\n")
    print("| file | events | Mev/s |")
    print("|---|---|---|")
    for name in ("expelliarmus_evt3_sample.raw", "expelliarmus_evt2_sample.raw", "faery_evt2.raw",
                 "tonic_sample_ncars.dat"):
        path = SAMPLES / name
        if not path.is_file():
            continue
        count = len(load_events(path))
        seconds = best_time(lambda: load_events(path), 5)
        print(f"| {name} | {count:,} | {count / seconds / 1e6:.0f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30_000_000)
