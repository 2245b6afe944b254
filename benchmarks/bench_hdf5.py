"""Tensor-file benchmarks: precompute throughput and HDF5Iterator read throughput.

1. Precompute: RAW EVT 3.0 at 1280x720 -> histo at 640x360 (``generate_hdf5``), one process and
   ``-j 2``, for each compression, on two recordings of 30 M events and on eight files (each
   of the two written four times: the work of eight recordings, and what a worker's start
   costs when it takes several inputs).
2. Codec choice: write/read speed and size of the same rows with gzip (level 4), Blosc+LZ4,
   Blosc+Zstd and no compression.
3. Read: ``HDF5Iterator`` rows/s next to a bare h5py read of the same rows in the same run; the
   overhead column must stay under 10 %.

Prints markdown tables; never asserts on time. Run: ``python benchmarks/bench_hdf5.py``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_stream import synthetic_events  # noqa: E402

from evstream.io import RawWriter  # noqa: E402
from evstream.preprocessing.hdf5 import generate_hdf5  # noqa: E402
from evstream.utils.h5_writer import compression_options  # noqa: E402

HEIGHT, WIDTH = 720, 1280
OUT_HW = (360, 640)
N_EVENTS = 30_000_000       # per input file
RATE = 50e6                 # events/s -> 0.6 s of recording per file
DELTA_T = 10_000            # 60 rows per file
T = 5                       # rows per HDF5Iterator chunk


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(lines) + "\n")


def make_inputs(folder: str, n_files: int = 2) -> list[str]:
    paths = []
    for i in range(n_files):
        path = os.path.join(folder, f"synthetic_{i}.raw")
        events = synthetic_events(N_EVENTS, HEIGHT, WIDTH, RATE, seed=i)
        with RawWriter(path, HEIGHT, WIDTH, format="evt3") as w:
            w.write(events)
        paths.append(path)
    return paths


def copies(paths: list[str], n: int) -> list[str]:
    """Each file of ``paths`` and ``n - 1`` copies of it under other names."""
    out = list(paths)
    for path in paths:
        for k in range(1, n):
            out.append(f"{path[:-4]}_copy{k}.raw")
            shutil.copyfile(path, out[-1])
    return out


def bench_precompute(folder: str, input_sets: list[list[str]]) -> dict[str, str]:
    """Returns one output file per compression (of the first input set) for the read benchmark."""
    # warm the numba caches of the decoder and kernel once (not timed)
    generate_hdf5(input_sets[0][:1], os.path.join(folder, "warm"), "histo", DELTA_T, *OUT_HW,
                  n_processes=1, max_duration=DELTA_T)
    rows, outputs = [], {}
    for inputs, compression, jobs in itertools.product(input_sets, ("gzip", "blosc", "none"), (1, 2)):
        out = os.path.join(folder, f"pre_{compression}_{jobs}_{len(inputs)}")
        t0 = time.perf_counter()
        results = generate_hdf5(inputs, out, "histo", DELTA_T, *OUT_HW, n_processes=jobs,
                                compression=compression)
        elapsed = time.perf_counter() - t0
        events = sum(r.events for r in results)
        size = sum(r.bytes for r in results)
        rows.append([compression, jobs, len(inputs), f"{events / 1e6:.1f}",
                     sum(r.rows for r in results), f"{size / 1e6:.1f}", f"{elapsed:.2f}",
                     f"{events / elapsed / 1e6:.2f}"])
        outputs.setdefault(compression, results[0].outputs[0])
    print(f"### Precompute: RAW EVT 3.0 {WIDTH}x{HEIGHT} -> histo {OUT_HW[1]}x{OUT_HW[0]}, "
          f"delta_t {DELTA_T} us (wall time, with the start of the -j 2 worker processes)\n")
    _table(["compression", "-j", "files", "Mev", "rows", "MB", "time (s)", "Mev/s"], rows)
    return outputs


def _read_all_bare(path: str, passes: int = 1) -> float:
    """Seconds per pass over the file's complete T-row chunks with plain h5py.

    Each chunk is held until the next one is read, as any consumer (and the iterator's caller)
    does: discarding it at once lets the allocator hand the same pages back and reads
    uncompressed files ~25 % faster, a difference of memory reuse, not of reader work."""
    with h5py.File(path, "r") as f:
        d = f["data"]
        t0 = time.perf_counter()
        for _ in range(passes):
            for start in range(0, len(d) - T + 1, T):
                rows = d[start:start + T]  # noqa: F841
        return (time.perf_counter() - t0) / passes


def _read_all_iterator(path: str, passes: int = 1) -> float:
    """Seconds per pass of HDF5Iterator over the same chunks."""
    from evstream.data import HDF5Iterator
    it = HDF5Iterator(path, num_tbins=T)
    t0 = time.perf_counter()
    for _ in range(passes):
        for _ in it:
            pass
    elapsed = time.perf_counter() - t0
    it.close()
    return elapsed / passes


def bench_codecs(folder: str, source: str) -> None:
    with h5py.File(source, "r") as f:
        data = f["data"][:]
    blosc, blosc2 = hdf5plugin.Blosc, hdf5plugin.Blosc2
    codecs = {"gzip level 4 (evstream 'gzip', the original's)": compression_options("gzip"),
              "Blosc2 zstd-1 bitshuffle (evstream 'blosc')": compression_options("blosc"),
              "Blosc2 lz4-5 bitshuffle": dict(blosc2("lz4", 5, blosc2.BITSHUFFLE)),
              "Blosc lz4-5 shuffle": dict(blosc("lz4", 5, blosc.SHUFFLE)),
              "Blosc zstd-1 bitshuffle": dict(blosc("zstd", 1, blosc.BITSHUFFLE)),
              "Bitshuffle lz4": dict(hdf5plugin.Bitshuffle(cname="lz4")),
              "none": compression_options("none")}
    rows = []
    for name, opts in codecs.items():
        path = os.path.join(folder, f"codec_{len(rows)}.h5")
        t0 = time.perf_counter()
        with h5py.File(path, "w") as f:
            d = f.create_dataset("data", shape=data.shape, dtype=data.dtype,
                                 chunks=(1, *data.shape[1:]), **opts)
            for i in range(len(data)):
                d[i] = data[i]
        write = time.perf_counter() - t0
        read = min(_read_all_bare(path) for _ in range(3))
        n = len(data) // T * T
        rows.append([name, f"{os.path.getsize(path) / 1e6:.1f}", f"{len(data) / write:.0f}",
                     f"{n / read:.0f}"])
    print(f"### Codecs on the same {len(data)} histo rows ({data.shape[1]}x{data.shape[2]}x"
          f"{data.shape[3]} float32, {data[0].nbytes / 1e6:.2f} MB each, bare h5py)\n")
    _table(["codec", "MB", "write rows/s", "read rows/s"], rows)


def bench_read(outputs: dict[str, str]) -> None:
    rows = []
    for compression, path in outputs.items():
        with h5py.File(path, "r") as f:
            n = len(f["data"]) // T * T
        passes = max(1, int(0.3 / _read_all_bare(path)))     # about 0.3 s per measurement
        bare, ours = [], []
        for _ in range(5):                    # interleaved, best of 5 each
            bare.append(_read_all_bare(path, passes))
            ours.append(_read_all_iterator(path, passes))
        b, o = min(bare), min(ours)
        rows.append([compression, n, f"{n / b:.0f}", f"{n / o:.0f}", f"{(o / b - 1) * 100:+.1f} %"])
    print(f"### Read: HDF5Iterator (T={T}, float32 torch tensors) vs bare h5py `rows = d[a:a+T]`; best of 5 interleaved runs of ~0.3 s\n")
    _table(["compression", "rows", "bare h5py rows/s", "HDF5Iterator rows/s", "overhead"], rows)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        inputs = make_inputs(folder)
        input_sets = [inputs, copies(inputs, 4)]
        outputs = bench_precompute(folder, input_sets)
        bench_codecs(folder, outputs["none"])
        bench_read(outputs)


if __name__ == "__main__":
    main()
