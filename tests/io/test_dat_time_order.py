"""EventDatReader's ``time_order``: a DAT whose times go backwards (written with DatWriter, then
records patched on disk, as a damaged recording looks) is raised on by default, or read with
its times repaired by a running maximum (RVT's rule) or kept as stored; late records are
counted once and warned about once; seeks and windowed reads agree with a whole read."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from evstream.errors import ArgumentError, FileFormatError
from evstream.io import DatWriter, EventCD, EventDatReader, EventsIterator, open_reader
from evstream.io import dat as dat_module
from evstream.io import time_order as time_order_module
from evstream.io.dat import read_dat_layout

N = 5000


def _write(path, patched: dict[int, int], n: int = N, seed: int = 0) -> np.ndarray:
    """A sorted recording written with DatWriter, then records ``{index: t}`` patched on disk;
    returns the events as stored (file order, patched times)."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, 1_000_000, n))
    ev["x"] = rng.integers(0, 64, n)
    ev["y"] = rng.integers(0, 48, n)
    ev["p"] = rng.integers(0, 2, n)
    with DatWriter(path, 48, 64) as w:
        w.write(ev)
    offset = read_dat_layout(os.fspath(path))[2]
    with open(path, "r+b") as f:
        for i, t in patched.items():
            f.seek(offset + 8 * i)
            f.write(int(t).to_bytes(4, "little"))
            ev["t"][i] = t
    return ev


def _late(t: np.ndarray) -> int:
    """Events whose time is below the running maximum of the times before them."""
    return int(np.sum(t[1:] < np.maximum.accumulate(t)[:-1]))


# backward steps: a single late record, a run of three, one to 0, one right after a block edge
PATCHED = {10: 0, 700: 1, 701: 2, 702: 3, 2500: 100, 4097: 5}


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "back.dat"
    stored = _write(path, PATCHED)
    repaired = stored.copy()
    repaired["t"] = np.maximum.accumulate(stored["t"])
    assert _late(stored["t"]) == 6 and np.any(repaired["t"] != stored["t"])
    return path, stored, repaired


def test_default_raises_at_the_first_backward_record(recording):
    path, stored, _ = recording
    with pytest.raises(FileFormatError, match=r"back\.dat.*backwards at record 10 .*t = 0 µs.*"
                                              r"time_order='raise'"):
        EventDatReader(path).read_all()
    with pytest.raises(ArgumentError, match="time_order"):
        EventDatReader(path, time_order="sort")


def test_repair_is_a_running_maximum_in_file_order_counted_once(recording):
    path, stored, repaired = recording
    reader = open_reader(path, time_order="repair")
    with pytest.warns(UserWarning, match="not sorted.*raised to the running maximum") as record:
        got = reader.read_all()
    assert len([w for w in record if "not sorted" in str(w.message)]) == 1
    np.testing.assert_array_equal(got, repaired)            # x, y, p untouched, order kept
    assert got["t"][10] == stored["t"][9] and got["t"][702] == stored["t"][699]
    assert reader.time_repaired_count == 6
    assert reader.last_event_time() == int(repaired["t"][-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # no second warning
        reader.seek_event(0)
        np.testing.assert_array_equal(reader.load_n_events(N), repaired)
    assert reader.time_repaired_count == 6                  # read twice, counted once


def test_keep_reports_the_stored_times(recording):
    path, stored, _ = recording
    reader = EventDatReader(path, time_order="keep")
    with pytest.warns(UserWarning, match="kept as stored"):
        np.testing.assert_array_equal(reader.read_all(), stored)
    assert reader.time_repaired_count == 6


@pytest.mark.parametrize("block", [7, 1 << 16])
@pytest.mark.parametrize("read_records", [3, 1 << 16])
def test_seeks_resume_the_running_maximum(tmp_path, monkeypatch, block, read_records):
    monkeypatch.setattr(time_order_module, "TIME_BLOCK", block)
    monkeypatch.setattr(dat_module, "READ_RECORDS", read_records)
    path = tmp_path / "back.dat"
    stored = _write(path, PATCHED)
    repaired = np.maximum.accumulate(stored["t"])
    reader = EventDatReader(path, time_order="repair", buffer_events=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in (0, 11, 699, 701, 703, 2501, 4096, 4098, N - 1, N):
            reader.seek_event(n)
            got = reader.load_n_events(300) if n < N else np.zeros(0, EventCD)
            np.testing.assert_array_equal(got["t"], repaired[n:n + 300])
            np.testing.assert_array_equal(got["x"], stored["x"][n:n + 300])
        for t in (0, 1, int(stored["t"][9]), int(stored["t"][9]) + 1, int(repaired[702]),
                  int(repaired[2500]) + 1, 999_999, 2_000_000):
            reader.seek_time(t)
            k = int(np.searchsorted(repaired, t, "left"))
            assert reader.current_event_index() == k
            assert reader.is_done() == (k == N)
            if k < N:
                np.testing.assert_array_equal(reader.load_n_events(50)["t"], repaired[k:k + 50])
    assert reader.time_repaired_count == 5     # record 2500 lies in no part read: not counted


def test_windowed_reads_equal_the_whole_read(recording):
    path, _, repaired = recording
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        windows = list(EventsIterator(path, delta_t=10_000, time_order="repair"))
        start_ts = 0
        for window in windows:           # every event in its window [t0, t0 + delta_t)
            assert np.all((window["t"] >= start_ts) & (window["t"] < start_ts + 10_000))
            start_ts += 10_000
        np.testing.assert_array_equal(np.concatenate(windows), repaired)
        reader = EventDatReader(path, time_order="repair")
        reader.seek_time(300_000)
        part = reader.load_delta_t(200_000)
    inside = (repaired["t"] >= 300_000) & (repaired["t"] < 500_000)
    np.testing.assert_array_equal(part, repaired[inside])


def test_late_records_and_out_of_sensor_events_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(dat_module, "READ_RECORDS", 5)
    path = tmp_path / "back.dat"
    stored = _write(path, {12: 1, 13: 2, 31: 0}, n=40)
    offset = read_dat_layout(os.fspath(path))[2]
    data = bytearray(path.read_bytes())
    w13 = int.from_bytes(data[offset + 8 * 13 + 4:offset + 8 * 13 + 8], "little")
    data[offset + 8 * 13 + 4:offset + 8 * 13 + 8] = ((w13 & ~0x3FFF) | 70).to_bytes(4, "little")
    path.write_bytes(bytes(data))                           # record 13: late and x = 70 > 63
    reader = EventDatReader(path, time_order="repair")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        got = reader.read_all()
    keep = np.ones(40, bool)
    keep[13] = False
    np.testing.assert_array_equal(got["t"], np.maximum.accumulate(stored["t"])[keep])
    assert reader.out_of_bounds_count == 1 and reader.time_repaired_count == 3


@pytest.mark.parametrize("time_order", ["repair", "keep"])
def test_long_windows_stop_at_their_end_and_equal_the_whole_read(tmp_path, monkeypatch,
                                                                 time_order):
    """Windows longer than the buffer are decoded straight into their arrays, and a DAT source
    now stops at the window's end in the blocks decoded one event per record in time order
    (before, every record up to the read-ahead was decoded and the events past the end were
    copied back into the buffer, then out again). Blocks with late or dropped records are
    decoded whole: the windows, the counters and the warnings stay those of a whole read."""
    monkeypatch.setattr(dat_module, "READ_RECORDS", 64)
    path = tmp_path / "back.dat"
    stored = _write(path, PATCHED)
    offset = read_dat_layout(os.fspath(path))[2]
    data = bytearray(path.read_bytes())                     # record 1500: x = 70, outside
    word = int.from_bytes(data[offset + 8 * 1500 + 4:offset + 8 * 1500 + 8], "little")
    at = offset + 8 * 1500 + 4
    data[at:at + 4] = ((word & ~0x3FFF) | 70).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    def play(**kwargs):
        reader = EventDatReader(path, time_order=time_order, **kwargs)
        windows, pending = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while not reader.done:
                windows.append(reader.load_delta_t(100_000))
                pending.append(reader._pending())
        return windows, pending, (reader.out_of_bounds_count, reader.time_repaired_count)

    long_windows, pending, counters = play(buffer_events=64)
    short_windows, _, short_counters = play()
    assert len(long_windows) == len(short_windows) == 10
    for got, expect in zip(long_windows, short_windows):
        np.testing.assert_array_equal(got, expect)
    assert counters == short_counters == (1, 6)
    keep = np.ones(N, bool)
    keep[1500] = False
    whole = stored[keep]
    if time_order == "repair":
        whole["t"] = np.maximum.accumulate(stored["t"])[keep]
    np.testing.assert_array_equal(np.concatenate(long_windows), whole)
    # clean blocks stop at the window's end: nothing decoded past it waits in the buffer
    assert sum(p == 0 for p in pending) >= 7
