"""Small Gen1- and Gen4-style RVT inputs built with evstream's own writers.

A DAT whose time goes backwards cannot be written by ``DatWriter`` (it refuses), so
:func:`write_dat` writes the events in time order and then patches the time field of chosen
records in place, which is what a recording with a backwards step looks like on disk.
"""

from __future__ import annotations

import os

import numpy as np

from evstream.io import DatWriter, EventBbox, EventCD
from evstream.io.dat import read_dat_layout


def events(x, y, p, t) -> np.ndarray:
    n = len(t)
    ev = np.zeros(n, EventCD)
    ev["x"], ev["y"], ev["p"], ev["t"] = (np.broadcast_to(np.asarray(v), (n,)) for v in (x, y, p, t))
    return ev


def write_dat(path, ev: np.ndarray, height: int, width: int, patched_times: dict | None = None):
    """Write ``ev`` (sorted by t) as a DAT; ``patched_times`` {record index: new t} is applied to
    the file afterwards (backwards times)."""
    with DatWriter(path, height, width) as w:
        w.write(ev)
    if patched_times:
        offset = read_dat_layout(os.fspath(path))[2]
        with open(path, "r+b") as f:
            for i, t in patched_times.items():
                f.seek(offset + 8 * i)
                f.write(int(t).to_bytes(4, "little"))


def boxes(rows) -> np.ndarray:
    """EventBbox rows from tuples (t, x, y, w, h, class_id[, track_id, confidence])."""
    out = np.zeros(len(rows), EventBbox)
    for i, r in enumerate(rows):
        out[i] = tuple(r) + (0, 1.0)[len(r) - 6:]     # default track_id 0, confidence 1
    return out


def random_events(rng, n, t_end, height, width) -> np.ndarray:
    return events(rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n),
                  np.sort(rng.integers(0, t_end, n)))


def make_gen1_dataset(root, seed=0) -> dict:
    """``root/{train,val,test}`` with DAT recordings 304x240 and 4 Hz boxes; returns the events
    written per sequence (file order, raw times)."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, names in (("train", ["a", "b"]), ("val", ["c"]), ("test", [])):
        folder = os.path.join(root, split)
        os.makedirs(folder, exist_ok=True)
        for name in names:
            ev = random_events(rng, 60_000, 1_400_000, 240, 304)
            write_dat(os.path.join(folder, f"{name}_td.dat"), ev, 240, 304)
            rows = [(t, 20 + k, 30, 50, 40, k % 2) for k, t in
                    enumerate([50_000, 250_000, 500_000, 750_000, 1_000_000, 1_250_000])]
            np.save(os.path.join(folder, f"{name}_bbox.npy"), boxes(rows))
            written[name] = ev
    return written


def make_gen4_dataset(root, seed=1) -> dict:
    """``root/{train,val,test}`` with 1280x720 DATs and 60 Hz boxes (every 16 667 µs)."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, names in (("train", ["g"]), ("val", []), ("test", ["h"])):
        folder = os.path.join(root, split)
        os.makedirs(folder, exist_ok=True)
        for name in names:
            ev = random_events(rng, 80_000, 500_000, 720, 1280)
            write_dat(os.path.join(folder, f"{name}_td.dat"), ev, 720, 1280)
            rows = [(100_000 + 16_667 * k, 101, 201, 60, 50, k % 4) for k in range(22)]
            np.save(os.path.join(folder, f"{name}_bbox.npy"), boxes(rows))
            written[name] = ev
    return written
