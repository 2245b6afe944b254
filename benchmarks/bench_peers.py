"""evstream's decoders against the native peers, side by side in one run (prints markdown tables;
asserts nothing).

Peers: ``expelliarmus`` (C; EVT 2.0, EVT 3.0, DAT) and ``evt3`` (Rust; EVT 3.0). They are never
project dependencies: install them into the benchmark-only folder ``.bench-peers`` with

    .venv/bin/python -m pip install --no-deps --target .bench-peers expelliarmus==1.1.12 evt3==0.4.1

(``make``-free; this script puts that folder on ``sys.path``). A peer that fails to import is
skipped and named in the output.

Streams (1280x720 unless stated, N events, file in page cache):

* ``synthetic``: the row-run stream of synthetic_stream.py, written by evstream's writers;
* ``tiled``: a real recording tiled in time, keeping the third-party encoder's words: the data
  words of shared/samples/expelliarmus_evt3_sample.raw (Gen4.1, 1280x720) repeated with each
  copy's TIME_HIGH words moved later by the copy's time span, so the decoders see one long
  recording with monotone time; the same for expelliarmus_evt2_sample.raw (Gen3, 640x480) for
  EVT 2.0; DAT: the tiled EVT 3.0 events written by DatWriter.

evstream's whole-file read (``load_events``) decodes a RAW file on as many threads as there are
CPUs (``evstream.io.raw_parallel``; parts of the file joined exactly), and a DAT file on one
thread while a second one faults the output's pages in ahead of it
(``evstream.utils.page_warmer``). The row ``evstream`` reads a file whose seek index the
warm-up call left in memory (so a RAW file's parts are decoded straight into their places);
``evstream, first read`` forgets that index before each call (the parts are then sized from an
estimate and moved together after); ``evstream, one thread`` reads with one decoding thread and
no warmer, for a one-thread comparison with the peers. The 50 ms windows use neither (their
arrays are reused).

Columns: whole file (one call that returns every event) and 50 ms windows (evstream:
``EventsIterator(delta_t=50000)``; expelliarmus: ``read_time_window`` with ``time_window=50``
ms; evt3: ``decode_file_batches`` with batches of the bytes of 50 ms of that stream, the peer
having no time-window reader). Rates are best of R rounds after one warm-up call, the contenders
interleaved inside each round (the machine is shared). Bounds measured in the same run:
allocating a fresh EventCD output and writing every byte of it once (alloc + first touch), and a
byte copy of an EventCD array already in memory into a fresh one (numpy's own ``copy`` of the
structured array goes field by field, about 7x slower).

Run: ``python benchmarks/bench_peers.py [N [R]]``.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
PEERS_DIR = HERE.parent / ".bench-peers"
if PEERS_DIR.is_dir():
    sys.path.append(str(PEERS_DIR))

from synthetic_stream import synthetic_events  # noqa: E402

from evstream.io import DatWriter, EventCD, EventsIterator, RawWriter, load_events  # noqa: E402
from evstream.io import raw_parallel  # noqa: E402
from evstream.io.header import read_raw_header  # noqa: E402
from evstream.io.raw import COMPLETE_INDEXES  # noqa: E402
from evstream.io.reader import copy_records  # noqa: E402
from evstream.utils import page_warmer  # noqa: E402

SAMPLES = HERE.parents[1].parent / "shared" / "samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")
WINDOW_US = 50_000


def import_peer(name: str):
    """The peer module, or the reason it cannot be used (a string)."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure means "skip this peer"
        return f"{type(exc).__name__}: {exc}"


def cpu_model() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# ---- streams ------------------------------------------------------------------------------------
def tile_raw(sample: Path, out: Path, n_events_target: int, n_sample_events: int) -> int:
    """Write ``out``: ``sample``'s header, then its data words repeated until about
    ``n_events_target`` events, each copy's TIME_HIGH payloads moved by the copy's span. Returns
    the number of copies."""
    header = read_raw_header(str(sample))
    raw = sample.read_bytes()
    if header.encoding == "evt3":
        words = np.frombuffer(raw[header.data_offset:], dtype="<u2")
        is_th = (words >> 12) == 0x8
        th = (words[is_th] & 0xFFF).astype(np.int64)
        mask = 0xFFF
    elif header.encoding == "evt2":
        words = np.frombuffer(raw[header.data_offset:], dtype="<u4")
        is_th = (words >> 28) == 0x8
        th = (words[is_th] & 0x0FFFFFFF).astype(np.int64)
        mask = 0x0FFFFFFF
    else:
        raise ValueError(f"cannot tile {header.encoding}")
    span = int(th.max() - th.min()) + 1        # TIME_HIGH units covered by one copy
    copies = max(1, -(-n_events_target // n_sample_events))
    with open(out, "wb") as f:
        f.write(raw[:header.data_offset])
        for k in range(copies):
            w = words.copy()
            moved = (th + k * span) & mask
            w[is_th] = (w[is_th] & ~np.array(mask, dtype=w.dtype)) | moved.astype(w.dtype)
            f.write(w.tobytes())
    return copies


def write_streams(tmp: Path, n_events: int) -> dict:
    """name -> (path, encoding, n_events, bytes per 50 ms)."""
    streams = {}
    events = synthetic_events(n_events)
    for fmt in ("evt3", "evt2", "dat"):
        path = tmp / (f"synthetic_{fmt}.raw" if fmt != "dat" else "synthetic.dat")
        if fmt == "dat":
            with DatWriter(path, 720, 1280) as w:
                w.write(events)
        else:
            with RawWriter(path, 720, 1280, format=fmt) as w:
                w.write(events)
        span = int(events["t"][-1]) + 1
        streams[("synthetic", fmt)] = (path, fmt, n_events, os.path.getsize(path) * WINDOW_US // span)
    del events
    for fmt, name in (("evt3", "expelliarmus_evt3_sample.raw"), ("evt2", "expelliarmus_evt2_sample.raw")):
        sample = SAMPLES / name
        if not sample.is_file():
            continue
        n_sample = len(load_events(sample))
        path = tmp / f"tiled_{fmt}.raw"
        tile_raw(sample, path, n_events, n_sample)
        ev = load_events(path)
        span = int(ev["t"][-1] - ev["t"][0]) + 1
        streams[("tiled", fmt)] = (path, fmt, len(ev), os.path.getsize(path) * WINDOW_US // span)
        if fmt == "evt3":
            dat = tmp / "tiled.dat"
            ev["t"] -= ev["t"][0]
            with DatWriter(dat, 720, 1280) as w:
                w.write(ev)
            streams[("tiled", "dat")] = (dat, "dat", len(ev), os.path.getsize(dat) * WINDOW_US // span)
        del ev
    return streams


# ---- contenders ---------------------------------------------------------------------------------
def contenders(path: Path, fmt: str, window_bytes: int, peers: dict) -> dict:
    """label -> (whole-file callable, windowed callable or None); each returns an event count."""
    def one_thread():
        page_warmer.ENABLED = False
        raw_parallel.READ_ALL_THREADS = 1
        try:
            return len(load_events(path))
        finally:
            page_warmer.ENABLED = True
            raw_parallel.READ_ALL_THREADS = None

    def first_read():
        COMPLETE_INDEXES.clear()
        return len(load_events(path))
    out = {"evstream": (lambda: len(load_events(path)),
                        lambda: sum(len(w) for w in EventsIterator(path, delta_t=WINDOW_US))),
           "evstream, one thread": (one_thread, None)}
    if fmt != "dat":
        out["evstream, first read"] = (first_read, None)
    ex = peers.get("expelliarmus")
    if not isinstance(ex, str) and ex is not None:
        def ex_whole():
            return len(ex.Wizard(encoding=fmt, fpath=str(path)).read())

        def ex_windows():
            wiz = ex.Wizard(encoding=fmt, fpath=str(path), time_window=WINDOW_US // 1000)
            return sum(len(w) for w in wiz.read_time_window())
        out["expelliarmus"] = (ex_whole, ex_windows)
    e3 = peers.get("evt3")
    if fmt == "evt3" and not isinstance(e3, str) and e3 is not None:
        def e3_whole():
            return len(e3.decode_file(str(path)))

        def e3_windows():
            return sum(len(b) for b in e3.decode_file_batches(str(path), batch_bytes=int(window_bytes)))
        out["evt3"] = (e3_whole, e3_windows)
    return out


def best_rates(fns: dict, n_events: int, rounds: int) -> tuple[dict, dict]:
    """Best rate (Mev/s) of each callable over ``rounds`` interleaved rounds; and its count."""
    best = {k: 0.0 for k in fns}
    counts = {k: fn() for k, fn in fns.items()}     # warm-up (JIT caches, file in page cache)
    for _ in range(rounds):
        for k, fn in fns.items():
            start = time.perf_counter()
            counts[k] = fn()
            best[k] = max(best[k], n_events / (time.perf_counter() - start) / 1e6)
    return best, counts


def fresh_output(n_events: int) -> np.ndarray:
    """A fresh EventCD array with every byte written once (the alloc + first-touch bound)."""
    a = np.empty(n_events, dtype=EventCD)
    a.view(np.int64)[:] = 1
    return a


def alloc_touch_rate(n_events: int, rounds: int) -> tuple[float, float]:
    """(alloc + first touch of a fresh EventCD output, byte copy of an existing one into a
    fresh one), Mev/s."""
    src = fresh_output(n_events)
    fns = {"alloc": lambda: len(fresh_output(n_events)), "copy": lambda: len(copy_records(src))}
    best, _ = best_rates(fns, n_events, rounds)
    return best["alloc"], best["copy"]


def main(n_events: int = 30_000_000, rounds: int = 5) -> None:
    peers = {name: import_peer(name) for name in ("expelliarmus", "evt3")}
    print(f"\n### Decoders vs peers, one run, {cpu_model()}\n")
    for name, mod in peers.items():
        if isinstance(mod, str):
            print(f"* peer {name}: skipped, import failed ({mod})")
        else:
            print(f"* peer {name} {getattr(mod, '__version__', '') or _dist_version(name)}")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\nGenerating the streams ({n_events:,} events each) ...", flush=True)
        streams = write_streams(Path(tmp), n_events)
        alloc, copy = alloc_touch_rate(n_events, rounds)
        print(f"\nBounds: alloc + first touch of a fresh {n_events:,}-event EventCD output "
              f"{alloc:.0f} Mev/s; byte copy of an EventCD array into a fresh one {copy:.0f} Mev/s "
              f"(best of {rounds}, "
              f"after one warm-up call). The last column uses the bound measured again, "
              f"interleaved with that stream's decoders.\n")
        print("| stream | format | events | MiB | decoder | whole Mev/s | 50 ms windows Mev/s | "
              "whole vs best peer | windows vs best peer | whole / alloc bound |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for (kind, fmt), (path, enc, n, window_bytes) in streams.items():
            path.read_bytes()
            fns = contenders(path, enc, window_bytes, peers)
            bound = {"bound": lambda: len(fresh_output(n))}      # interleaved with the decoders
            whole, counts = best_rates({**{k: v[0] for k, v in fns.items()}, **bound}, n, rounds)
            alloc = whole.pop("bound")
            windows, wcounts = best_rates({k: v[1] for k, v in fns.items() if v[1] is not None}, n,
                                          max(2, rounds // 2))
            ours = ("evstream", "evstream, one thread", "evstream, first read")
            peer_whole = max((v for k, v in whole.items() if k not in ours), default=0.0)
            peer_win = max((v for k, v in windows.items() if k not in ours), default=0.0)
            mib = os.path.getsize(path) / 2**20
            for k in fns:
                win = f"{windows[k]:.0f}" if k in windows else "-"
                note = "" if counts[k] == n and wcounts.get(k, n) == n else \
                    f" (returned {counts[k]:,} / {wcounts.get(k, n):,} events)"
                ratio_w = f"x{whole[k] / peer_whole:.2f}" if k in ours and peer_whole else ""
                ratio_s = f"x{windows[k] / peer_win:.2f}" if k in windows and k in ours and peer_win else ""
                print(f"| {kind} | {fmt} | {n:,} | {mib:.0f} | {k}{note} | {whole[k]:.0f} | "
                      f"{win} | {ratio_w} | {ratio_s} | {whole[k] / alloc:.0%} |", flush=True)


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
