"""HDF5 event arrays (eTraM / RVT / DSEC ``events/{x,y,p,t}``): HDF5EventArraysReader, content
dispatch, blosc and the missing-plugin error, time repair, out-of-sensor events, ms_to_idx,
t_offset. Files are built with h5py in each dataset's layout."""

from __future__ import annotations

import h5py
import hdf5plugin
import numpy as np
import pytest

from evstream.errors import (ArgumentError, FileFormatError, GeometryError,
                             UnsupportedFormatError)
from evstream.io import EventCD, EventNpyReader, EventsIterator, load_events, open_reader
from evstream.io.hdf5_events import (DSEC_SENSOR, TIME_BLOCK, HDF5EventArraysReader,
                                     hdf5_content, read_t_offset)


def make_events(n=150_000, width=640, height=480, span=3_000_000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, span, n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def write_event_arrays(path, events, layout="rvt", size=(480, 640), compression=None,
                       t_offset=None, ms_to_idx=None, t_dtype=None):
    """``layout``: "rvt" (x, y u2, p u1, t i8, events/height, events/width), "dsec" (t u4,
    ms_to_idx and t_offset at the root, no size) or "etram" (like rvt, u2/u2/u1/i8)."""
    opts = dict(hdf5plugin.Blosc(cname="zstd")) if compression == "blosc" else \
        ({"compression": compression} if compression else {})
    t_dtype = t_dtype or ("<u4" if layout == "dsec" else "<i8")
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        for name, dtype in (("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", t_dtype)):
            chunking = {"chunks": (min(16384, len(events)),)} if len(events) else \
                {"chunks": (1024,), "maxshape": (None,)}
            g.create_dataset(name, data=events[name].astype(dtype), **chunking, **opts)
        if layout != "dsec" and size is not None:
            g.create_dataset("height", data=size[0])
            g.create_dataset("width", data=size[1])
        if layout == "dsec":
            t = events["t"].astype(np.int64)
            last_ms = int(t[-1]) // 1000 + 1 if len(t) else 1
            f.create_dataset("ms_to_idx", data=np.searchsorted(t, 1000 * np.arange(last_ms))
                             .astype("<u8") if ms_to_idx is None else ms_to_idx)
            f.create_dataset("t_offset", data=np.int64(t_offset or 0))


@pytest.mark.parametrize("layout,compression", [("rvt", None), ("rvt", "gzip"),
                                                ("dsec", "blosc"), ("etram", "blosc")])
def test_reads_every_event_in_each_layout(tmp_path, layout, compression):
    events = make_events()
    path = tmp_path / ("events.h5" if layout == "dsec" else "rec_td.h5")
    write_event_arrays(path, events, layout, compression=compression, t_offset=7_000_000)
    assert hdf5_content(path) == "event_arrays"
    reader = open_reader(path)
    assert isinstance(reader, HDF5EventArraysReader)
    assert reader.get_size() == (480, 640) and reader.event_count() == len(events)
    np.testing.assert_array_equal(load_events(path), events)
    got = np.concatenate(list(EventsIterator(path, delta_t=10_000)), dtype=EventCD)
    np.testing.assert_array_equal(got, events)
    assert reader.duration_s == pytest.approx((events["t"][-1] - events["t"][0]) * 1e-6)


def test_cursor_matches_the_npy_reader(tmp_path):
    """Same calls on the same events: the h5 reader and the NPY reader agree step by step."""
    events = make_events(n=200_000, span=2_000_000, seed=3)
    h5, npy = tmp_path / "rec_td.h5", tmp_path / "rec.npy"
    write_event_arrays(h5, events)
    np.save(npy, events)
    a, b = open_reader(h5, buffer_events=4096), EventNpyReader(npy)
    ops = [("load_n_events", 1), ("load_delta_t", 100), ("load_delta_t", 33_333),
           ("load_mixed", 5000, 10_000), ("seek_time", 777_777), ("load_n_events", 70_000),
           ("seek_event", 150_000), ("load_delta_t", 50_000), ("seek_time", 0),
           ("load_delta_t", 3_000_000), ("seek_time", 10**9), ("reset",),
           ("load_mixed", 10, 1_000_000)]
    for name, *args in ops:
        ra, rb = getattr(a, name)(*args), getattr(b, name)(*args)
        if ra is not None:
            np.testing.assert_array_equal(ra, rb, err_msg=str((name, args)))
        assert (a.current_time, a.current_event_index(), a.is_done()) == \
            (b.current_time, b.current_event_index(), b.is_done()), (name, args)


def _unsorted(n=200_000, seed=4):
    events = make_events(n=n, span=2_000_000, seed=seed)
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, 300, replace=False)
    events["t"][idx] = np.maximum(events["t"][idx] - rng.integers(1, 50_000, 300), 0)
    return events


def test_unsorted_times_are_repaired_with_a_running_maximum(tmp_path):
    events = _unsorted()
    path = tmp_path / "gen4_td.h5"
    write_event_arrays(path, events)
    repaired = events.copy()
    repaired["t"] = np.maximum.accumulate(events["t"])
    raised = int(np.sum(repaired["t"] > events["t"]))
    assert raised > 250
    reader = open_reader(path)
    with pytest.warns(UserWarning, match="not sorted") as record:
        got = reader.read_all()
    assert len([w for w in record if "not sorted" in str(w.message)]) == 1
    np.testing.assert_array_equal(got, repaired)
    assert reader.time_repaired_count == raised
    # seeks land where the repaired times say, and the running maximum resumes correctly
    for t in (1, 654_321, 1_500_000):
        reader.seek_time(t)
        k = int(np.searchsorted(repaired["t"], t))
        assert reader.current_event_index() == k
        np.testing.assert_array_equal(reader.load_n_events(TIME_BLOCK + 10),
                                      repaired[k:k + TIME_BLOCK + 10])
    reader.seek_event(123_456)
    np.testing.assert_array_equal(reader.load_n_events(1000), repaired[123_456:124_456])
    assert reader.time_repaired_count == raised        # parts read twice are counted once


def test_unsorted_times_keep_and_raise(tmp_path):
    events = _unsorted()
    path = tmp_path / "gen4_td.h5"
    write_event_arrays(path, events)
    reader = open_reader(path, time_order="keep")
    with pytest.warns(UserWarning, match="kept as stored"):
        np.testing.assert_array_equal(reader.read_all(), events)
    assert reader.time_repaired_count == int(np.sum(np.maximum.accumulate(events["t"]) >
                                                    events["t"]))
    with pytest.raises(FileFormatError, match="time_order='raise'") as info:
        load_events(path, time_order="raise")
    assert str(path) in str(info.value)
    with pytest.raises(ArgumentError, match="time_order"):
        open_reader(path, time_order="sort")


def test_out_of_sensor_events_are_dropped_and_counted(tmp_path):
    events = make_events(n=20_000, width=1280, height=720)
    events["y"][[5, 9_000, 19_999]] = 33014          # the eTraM file's value
    path = tmp_path / "etram_td.h5"
    write_event_arrays(path, events, "etram", size=(720, 1280))
    reader = open_reader(path)
    with pytest.warns(UserWarning, match="outside the 1280x720"):
        got = reader.read_all()
    keep = events["y"] < 720
    np.testing.assert_array_equal(got, events[keep])
    assert reader.out_of_bounds_count == 3
    reader.reset()
    reader.read_all()
    assert reader.out_of_bounds_count == 3
    np.testing.assert_array_equal(load_events(path, out_of_bounds="keep"), events)
    with pytest.raises(GeometryError, match="out_of_bounds='raise'"):
        load_events(path, out_of_bounds="raise")
    with pytest.raises(GeometryError, match="stores a 1280x720"):
        open_reader(path, height=480, width=640)


def test_sizeless_file_takes_the_given_size_and_dsec_has_its_own(tmp_path):
    events = make_events(n=1000, width=700, height=500)
    path = tmp_path / "nosize_td.h5"
    write_event_arrays(path, events, size=None)
    assert open_reader(path).get_size() is None
    with pytest.warns(UserWarning, match="outside the 640x480"):
        got = load_events(path, height=480, width=640)
    assert len(got) == int(np.sum((events["x"] < 640) & (events["y"] < 480)))
    dsec = tmp_path / "events.h5"
    write_event_arrays(dsec, make_events(n=1000), "dsec")
    assert open_reader(dsec).get_size() == DSEC_SENSOR == (480, 640)


def test_ms_to_idx_and_t_offset(tmp_path):
    events = make_events(seed=5)
    path = tmp_path / "events.h5"
    write_event_arrays(path, events, "dsec", compression="blosc", t_offset=55_000_000_000)
    assert read_t_offset(path) == 55_000_000_000
    reader = open_reader(path)
    assert reader.t_offset == 55_000_000_000
    for t in (0, 999, 1000, 1_234_567, 2_999_999):
        reader.seek_time(t)
        assert reader.current_event_index() == int(np.searchsorted(events["t"], t))
    shifted = load_events(path, add_t_offset=True)
    np.testing.assert_array_equal(shifted["t"], events["t"] + 55_000_000_000)
    absolute = open_reader(path, add_t_offset=True)
    absolute.seek_time(55_001_234_567)
    assert absolute.current_event_index() == int(np.searchsorted(events["t"], 1_234_567))
    # a wrong index is checked, never trusted
    bad = tmp_path / "bad" / "events.h5"
    bad.parent.mkdir()
    write_event_arrays(bad, events, "dsec", ms_to_idx=np.full(3001, len(events) - 1, "<u8"))
    reader = open_reader(bad)
    reader.seek_time(1_234_567)
    assert reader.current_event_index() == int(np.searchsorted(events["t"], 1_234_567))


def test_missing_plugin_is_named(tmp_path, monkeypatch):
    path = tmp_path / "events.h5"
    write_event_arrays(path, make_events(n=1000), "dsec", compression="blosc")
    real = h5py.h5z.filter_avail
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda fid: False if fid == 32001 else real(fid))
    with pytest.raises(UnsupportedFormatError, match="Blosc.*32001.*hdf5plugin") as info:
        open_reader(path)
    assert str(path) in str(info.value)


def test_chosen_by_content_not_extension(tmp_path):
    events = make_events(n=5000)
    path = tmp_path / "recording.bin"
    write_event_arrays(path, events)
    np.testing.assert_array_equal(load_events(path), events)
    with h5py.File(tmp_path / "odd.h5", "w") as f:
        f.create_group("events").create_dataset("x", data=np.zeros(3, "u2"))
    with pytest.raises(FileFormatError, match="without /CD/events or /events"):
        open_reader(tmp_path / "odd.h5")


def test_bad_columns_are_errors(tmp_path):
    path = tmp_path / "bad_td.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        for k, n in zip("xypt", (10, 10, 10, 9)):
            g.create_dataset(k, data=np.zeros(n, "u2"))
    with pytest.raises(FileFormatError, match="one length") as info:
        open_reader(path)
    assert str(path) in str(info.value)


def test_empty_file_and_signed_polarity(tmp_path):
    empty = tmp_path / "empty_td.h5"
    write_event_arrays(empty, np.zeros(0, EventCD))
    reader = open_reader(empty)
    assert reader.event_count() == 0 and reader.is_done() and reader.duration_s == 0.0
    assert len(reader.read_all()) == 0
    reader.seek_time(1000)
    assert reader.is_done()
    signed = tmp_path / "signed_td.h5"
    events = make_events(n=100)
    with h5py.File(signed, "w") as f:
        g = f.create_group("events")
        for k in "xyt":
            g.create_dataset(k, data=events[k])
        g.create_dataset("p", data=np.where(events["p"] > 0, 1, -1).astype("i1"))   # -1 = OFF
    np.testing.assert_array_equal(load_events(signed), events)
