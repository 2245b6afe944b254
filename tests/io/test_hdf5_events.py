"""Prophesee HDF5 event files: HDF5EventsReader, content dispatch, ECF and corrupt files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from evstream.errors import FileFormatError, UnsupportedFormatError
from evstream.io import EventCD, EventExtTrigger, EventsIterator, load_events, open_reader
from evstream.io.hdf5_events import ECF_FILTER_ID, HDF5EventsReader, hdf5_content

STORED_CD = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])  # packed


def make_events(n=50_000, width=64, height=48, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(100, 300_000, n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def write_event_file(path, events, compression="gzip", geometry="64x48", ecf=False):
    """The SDK layout (formats.md §10), built with h5py."""
    with h5py.File(path, "w") as f:
        f.attrs["version"] = "1.0"
        if geometry:
            f.attrs["geometry"] = geometry
        cd = f.create_group("CD")
        stored = np.zeros(len(events), STORED_CD)
        for k in "xypt":
            stored[k] = events[k]
        opts = {"compression": ECF_FILTER_ID, "allow_unknown_filter": True} if ecf else \
            ({"compression": compression} if compression else {})
        cd.create_dataset("events", data=stored, chunks=(16384,), maxshape=(None,), **opts)
        t0 = int(events["t"][0]) if len(events) else 0
        n_idx = (int(events["t"][-1]) - t0) // 2000 + 1 if len(events) else 0
        idx = np.zeros(n_idx, [("id", "<u8"), ("ts", "<i8")])
        idx["ts"] = t0 + 2000 * np.arange(n_idx)
        idx["id"] = np.searchsorted(events["t"], idx["ts"])
        ds = cd.create_dataset("indexes", data=idx)
        ds.attrs["offset"] = -t0
        trig = np.zeros(3, [("p", "<i2"), ("t", "<i8"), ("id", "<i2")])
        trig["t"] = [10, 20, 30]
        trig["p"] = [1, 0, 1]
        f.create_group("EXT_TRIGGER").create_dataset("events", data=trig)


@pytest.mark.parametrize("compression", ["gzip", None])
def test_reads_every_event_and_slices(tmp_path, compression):
    events = make_events()
    path = tmp_path / "rec.hdf5"
    write_event_file(path, events, compression)
    assert hdf5_content(path) == "events"
    np.testing.assert_array_equal(load_events(path), events)
    reader = open_reader(path)
    assert isinstance(reader, HDF5EventsReader)
    assert reader.get_size() == (48, 64) and reader.event_count() == len(events)
    got = np.concatenate(list(EventsIterator(path, delta_t=7000)), dtype=EventCD)
    np.testing.assert_array_equal(got, events)
    trig = reader.get_ext_trigger_events()
    assert trig.dtype == EventExtTrigger and trig["t"].tolist() == [10, 20, 30]


def test_seek_time_and_event_use_the_index(tmp_path):
    events = make_events()
    path = tmp_path / "rec.h5"
    write_event_file(path, events)
    reader = open_reader(path)
    for t in (0, 100, 5_001, 123_456, 299_999, 10**7):
        reader.seek_time(t)
        k = int(np.searchsorted(events["t"], t))
        assert reader.current_event_index() == k
        if k < len(events):
            np.testing.assert_array_equal(reader.load_n_events(5), events[k:k + 5])
    reader.seek_event(40_000)
    np.testing.assert_array_equal(reader.load_n_events(3), events[40_000:40_003])


def test_out_of_geometry_events_are_dropped_with_a_warning(tmp_path):
    events = make_events(1000)
    events["x"][::10] = 70
    path = tmp_path / "rec.hdf5"
    write_event_file(path, events)
    with pytest.warns(UserWarning, match="outside"):
        got = load_events(path)
    assert len(got) == 900


def test_ecf_compressed_file_names_the_plugin(tmp_path):
    path = tmp_path / "ecf.hdf5"
    write_event_file(path, make_events(100), ecf=True)
    with pytest.raises(UnsupportedFormatError, match="HDF5_PLUGIN_PATH") as info:
        open_reader(path)
    assert str(path) in str(info.value) and "ECF" in str(info.value)


def test_tensor_file_is_not_an_event_file(tmp_path):
    path = tmp_path / "tensors.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", shape=(2, 2, 4, 4), dtype="f4")
    assert hdf5_content(path) == "tensors"
    with pytest.raises(FileFormatError, match="tensor file") as info:
        EventsIterator(path)
    assert str(path) in str(info.value)


def test_truncated_hdf5_gives_a_clear_error(tmp_path):
    good = tmp_path / "good.hdf5"
    write_event_file(good, make_events())
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(FileFormatError) as info:
        load_events(bad)
    assert str(bad) in str(info.value)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(FileFormatError, match="HDF5") as info:
        open_reader(garbage)
    assert str(garbage) in str(info.value)
