"""HDF5Writer (h5py's file-object driver through a write-guarding file, see
``evstream.utils.h5_writer``) next to bare h5py with HDF5's default driver, writing the same rows
with the same layout (one row per chunk, grown by 100 rows) in the same run.

Rows: 61 histo-like rows 2x360x640 float32 (1.84 MB each, 5 % of the cells non-zero). Best of 5
interleaved runs per codec. Prints a markdown table; never asserts on time.
Run: ``python benchmarks/bench_writer.py``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time

import h5py
import numpy as np

from evstream.utils.h5_writer import GROW_ROWS, HDF5Writer, compression_options

ROWS, SHAPE = 61, (2, 360, 640)


def make_rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = np.zeros((ROWS,) + SHAPE, np.float32)
    mask = rng.random(rows.shape) < 0.05
    rows[mask] = rng.integers(1, 6, mask.sum()) / 5
    return rows


def write_bare(path: str, rows: np.ndarray, compression: str) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", shape=(GROW_ROWS,) + SHAPE, maxshape=(None,) + SHAPE,
                              chunks=(1,) + SHAPE, dtype=np.float32,
                              **compression_options(compression))
        for i, row in enumerate(rows):
            ds[i] = row
        ds.resize(len(rows), axis=0)


def write_guarded(path: str, rows: np.ndarray, compression: str) -> None:
    with HDF5Writer(path, "data", SHAPE, dtype=np.float32, compression=compression) as w:
        for row in rows:
            w.write(row)


def main() -> None:
    rows = make_rows()
    table = []
    with tempfile.TemporaryDirectory() as folder:
        for compression in ("gzip", "blosc", "none"):
            best = {"bare": float("inf"), "guarded": float("inf")}
            for _ in range(5):
                for name, fn in (("bare", write_bare), ("guarded", write_guarded)):
                    path = os.path.join(folder, f"{name}.h5")
                    t0 = time.perf_counter()
                    fn(path, rows, compression)
                    best[name] = min(best[name], time.perf_counter() - t0)
                    os.remove(path)
            table.append([compression, f"{best['bare'] * 1e3:.0f}", f"{best['guarded'] * 1e3:.0f}",
                          f"{best['guarded'] / best['bare'] - 1:+.0%}"])
    print(f"### HDF5Writer (file-object driver, write guard) vs bare h5py (default driver), "
          f"{ROWS} rows 2x360x640 float32, best of 5 ({platform.processor() or platform.machine()})\n")
    print("| compression | bare h5py (ms) | HDF5Writer (ms) | difference |")
    print("|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
