"""EventDatReader decodes in blocks of READ_RECORDS records (the read buffer stays in cache):
results, out-of-bounds counts and the time-goes-backwards error are independent of the block
size, including across block edges."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

from evstream.errors import FileFormatError
from evstream.io import DatWriter, EventCD, EventDatReader, EventsIterator
from evstream.io import dat as dat_module


def _events(n, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, 100_000, n))
    ev["x"] = rng.integers(0, 64, n)
    ev["y"] = rng.integers(0, 48, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
def test_blocks_give_the_same_events(tmp_path, monkeypatch, block):
    monkeypatch.setattr(dat_module, "READ_RECORDS", block)
    ev = _events(1000)
    path = tmp_path / "a.dat"
    with DatWriter(path, 48, 64) as w:
        w.write(ev)
    np.testing.assert_array_equal(EventDatReader(path).read_all(), ev)
    windows = list(EventsIterator(path, delta_t=7000))
    np.testing.assert_array_equal(np.concatenate(windows), ev)


@pytest.mark.parametrize("block", [3, 1 << 16])
def test_out_of_bounds_and_backwards_across_blocks(tmp_path, monkeypatch, block):
    monkeypatch.setattr(dat_module, "READ_RECORDS", block)
    ev = _events(40, seed=1)
    path = tmp_path / "b.dat"
    with DatWriter(path, 48, 64) as w:
        w.write(ev)
    data = bytearray(path.read_bytes())
    start = len(data) - 8 * len(ev)
    # record 10: x = 70 (outside 64); record 25: time before record 24's
    t10, w10 = struct.unpack_from("<II", data, start + 8 * 10)
    struct.pack_into("<II", data, start + 8 * 10, t10, (w10 & ~0x3FFF) | 70)
    bad = tmp_path / "c.dat"
    bad.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        reader = EventDatReader(bad)
        got = reader.read_all()
    assert len(got) == 39 and reader.out_of_bounds_count == 1
    t24 = struct.unpack_from("<I", data, start + 8 * 24)[0]
    struct.pack_into("<I", data, start + 8 * 25, max(t24 - 1, 0) if t24 else 0)
    if t24 == 0:
        pytest.skip("record 24 at t = 0")
    bad.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FileFormatError, match="record 25"):
            EventDatReader(bad).read_all()
