"""A plain-numpy implementation of RVT's event rules, written straight from the rules and
sharing no code with ``evstream.rvt``'s event path: the whole DAT decoded at once
(``np.fromfile``), the running-maximum repair, windows by binary search, float32 bins,
``np.add.at`` into uint8 (wraps modulo 256), the cut-off, full-resolution frames with
``[1::2, 1::2]`` for ds2_nearest. Like RVT's own script it loads a whole recording in memory.

Used by the tests as the oracle and by ``benchmarks/bench_rvt.py`` as the baseline.
"""

from __future__ import annotations

import numpy as np


def read_dat_whole(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every record of a DAT in file order: x, y, p, t (raw times)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while data.startswith(b"%", pos):
        pos = data.index(b"\n", pos) + 1
    pos += 2                                       # event type and size bytes
    words = np.frombuffer(data, dtype="<u4", offset=pos).reshape(-1, 2)
    w = words[:, 1]
    return (w & 0x3FFF).astype(np.int64), ((w >> 14) & 0x3FFF).astype(np.int64), \
        ((w >> 28) & 1).astype(np.int64), words[:, 0].astype(np.int64)


def frames_reference(x, y, p, t, ends, height, width, ds2=False, mode="duration",
                     count=50_000, cutoff=10) -> np.ndarray:
    """RVT's frames for window ends ``ends`` from whole-recording arrays (raw times)."""
    r = np.maximum.accumulate(t)
    out_hw = (height // 2, width // 2) if ds2 else (height, width)
    frames = np.zeros((len(ends), 20) + out_hw, np.uint8)
    f32 = np.float32
    for k, end in enumerate(ends):
        e = np.searchsorted(r, end, side="right")
        s = np.searchsorted(r, end - 50_000, side="left") if mode == "duration" else max(e - count, 0)
        if e <= s:
            continue
        tw = r[s:e]
        span = f32(max(int(tw[-1]) - int(tw[0]), 1))
        b = np.minimum(np.floor(((tw - tw[0]).astype(f32) / span) * f32(10)).astype(np.int64), 9)
        acc = np.zeros((20, height, width), np.uint8)
        np.add.at(acc, (p[s:e] * 10 + b, y[s:e], x[s:e]), 1)
        full = np.minimum(acc, cutoff)
        frames[k] = full[:, 1::2, 1::2] if ds2 else full
    return frames
