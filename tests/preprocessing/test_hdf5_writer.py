"""Tensor files: write_to_hdf5 / generate_hdf5 / split_label / HDF5Writer, attributes, layout,
compressions, n_events mode, atomic output, skip/overwrite, files in the original's layout."""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest

from evstream.errors import ArgumentError, EvstreamError, FileFormatError, GeometryError
from evstream.io import DatWriter, EventBbox, EventCD, EventsIterator, RawWriter, open_reader
from evstream.preprocessing import CDProcessor
from evstream.preprocessing import hdf5 as h5mod
from evstream.preprocessing.hdf5 import (generate_hdf5, get_tensor_file_duration, output_basename,
                                         read_tensor_attrs, run_parallel, split_label,
                                         write_to_hdf5)
from evstream.utils import HDF5Writer

H0, W0 = 48, 64


def make_events(n=20_000, t_max=230_000, seed=0, width=W0, height=H0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


@pytest.fixture
def dat_file(tmp_path):
    path = tmp_path / "rec_td.dat"
    with DatWriter(path, height=H0, width=W0) as w:
        w.write(make_events())
    return path


def rows_of(path):
    with h5py.File(path, "r") as f:
        return f["data"][:]


def expected_rows(path, delta_t, h, w, preprocess="histo", kwargs={}):
    k = int(math.log2(H0 // h))
    proc = CDProcessor(h, w, 1, preprocess, k, kwargs)
    return np.stack([proc(ev, delta_t, copy=True)[0]
                     for ev in EventsIterator(path, delta_t=delta_t, relative_timestamps=True)])


@pytest.mark.parametrize("compression,filter_id", [("gzip", 1), ("blosc", 32026), ("none", None)])
def test_round_trip_equals_cdprocessor(tmp_path, dat_file, compression, filter_id):
    out = tmp_path / "out"
    result = write_to_hdf5(dat_file, output_folder=out, delta_t=10_000, height=24, width=32,
                           compression=compression)
    assert result.status == "written" and result.outputs == [str(out / "rec.h5")]
    last_ts = int(open_reader(dat_file).read_all()["t"][-1])
    n_rows = last_ts // 10_000 + 1
    got = rows_of(out / "rec.h5")
    assert got.shape == (n_rows, 2, 24, 32) and got.dtype == np.float32 and result.rows == n_rows
    np.testing.assert_array_equal(got, expected_rows(dat_file, 10_000, 24, 32)[:n_rows])
    with h5py.File(out / "rec.h5", "r") as f:
        d = f["data"]
        assert d.chunks == (1, 2, 24, 32) and d.maxshape == (None, 2, 24, 32)
        plist = d.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    assert filters == [] if filter_id is None else filter_id in filters
    assert read_tensor_attrs(out / "rec.h5").compression == tuple(filters)


@pytest.mark.parametrize("last_t,rows", [(29_999, 3), (30_000, 4), (0, 1)])
def test_last_event_on_a_row_boundary_is_kept(tmp_path, last_t, rows):
    """The original writes ceil(last_t / dt) rows and loses an event exactly on a boundary."""
    events = np.zeros(2, EventCD)
    events["t"] = [0, last_t]
    events["x"] = [1, 2]
    path = tmp_path / "edge.dat"
    with DatWriter(path, height=H0, width=W0) as w:
        w.write(events)
    result = write_to_hdf5(path, output_folder=tmp_path / "o", delta_t=10_000,
                           preprocess_kwargs={"max_incr_per_pixel": 1})
    got = rows_of(tmp_path / "o" / "edge.h5")
    assert result.rows == rows and len(got) == rows
    assert got.sum() == 2 and got[-1, 0, 0, 2] == 1.0   # OFF event at x=2 in the last row


def test_attributes_are_exactly_the_originals(tmp_path, dat_file):
    write_to_hdf5(dat_file, output_folder=tmp_path, delta_t=10_000, preprocess="event_cube",
                  preprocess_kwargs={"max_incr_per_pixel": 3})
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        attrs = dict(f["data"].attrs)
        assert "last_timestamps" not in f
    assert set(attrs) == {"events_to_tensor", "delta_t", "event_input_height", "event_input_width",
                          "shape", "mode", "n_events", "max_incr_per_pixel", "split_polarity"}
    assert isinstance(attrs["events_to_tensor"], (bytes, np.bytes_))
    assert attrs["events_to_tensor"] == b"event_cube"
    assert attrs["delta_t"] == 10_000 and attrs["delta_t"].dtype == np.uint32
    assert (attrs["event_input_height"], attrs["event_input_width"]) == (H0, W0)
    assert list(attrs["shape"]) == [6, H0, W0] and attrs["mode"] == "delta_t"
    assert attrs["n_events"] == 0 and attrs["max_incr_per_pixel"] == 3
    assert bool(attrs["split_polarity"]) is True
    info = read_tensor_attrs(tmp_path / "rec.h5")
    assert (info.name, info.delta_t, info.mode, info.height, info.width) == \
        ("event_cube", 10_000, "delta_t", H0, W0)
    assert info.kwargs == {"max_incr_per_pixel": 3, "split_polarity": True}
    assert get_tensor_file_duration(tmp_path / "rec.h5") == info.rows * 10_000


def test_store_as_uint8(tmp_path, dat_file):
    write_to_hdf5(dat_file, output_folder=tmp_path, delta_t=10_000, store_as_uint8=True)
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        assert f["data"].dtype == np.uint8 and bool(f["data"].attrs["store_as_uint8"]) is True
        stored = f["data"][:]
    floats = expected_rows(dat_file, 10_000, H0, W0)[:len(stored)]
    np.testing.assert_array_equal(stored, np.round(floats * 255).astype(np.uint8))
    for bad in ("diff", "histo_quantized", "diff_quantized"):
        with pytest.raises(ArgumentError, match="store_as_uint8"):
            write_to_hdf5(dat_file, output_folder=tmp_path / bad, preprocess=bad,
                          store_as_uint8=True)


def test_n_events_mode_last_timestamps(tmp_path, dat_file):
    events = open_reader(dat_file).read_all()
    n = 3000
    write_to_hdf5(dat_file, output_folder=tmp_path, mode="n_events", n_events=n, delta_t=50_000)
    n_rows = len(events) // n                       # the short last row is dropped
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        data, ts = f["data"][:], f["last_timestamps"][:]
        attrs = dict(f["data"].attrs)
        assert f["last_timestamps"].dtype == np.int64 and f["last_timestamps"].chunks == (1,)
    assert attrs["mode"] == "n_events" and attrs["n_events"] == n and attrs["delta_t"] == 0
    assert len(data) == len(ts) == n_rows
    np.testing.assert_array_equal(ts, events["t"][n - 1::n][:n_rows])
    proc = CDProcessor(H0, W0, 1, "histo")
    for i in (0, n_rows - 1):
        chunk = events[i * n:(i + 1) * n].copy()
        chunk["t"] -= 0 if i == 0 else events["t"][i * n - 1]
        np.testing.assert_array_equal(data[i], proc(chunk, int(chunk["t"][-1]) + 1)[0])
    assert get_tensor_file_duration(tmp_path / "rec.h5") == ts[-1]
    with pytest.raises(ArgumentError, match="max_duration"):
        write_to_hdf5(dat_file, output_folder=tmp_path / "x", mode="n_events", n_events=10,
                      max_duration=100_000)


def test_split_by_max_duration_with_labels(tmp_path, dat_file):
    boxes = np.zeros(5, EventBbox)
    boxes["t"] = [5_000, 100_000, 100_001, 200_000, 229_000]
    boxes["class_id"] = [0, 1, 2, 3, 4]
    box_path = tmp_path / "rec_td_bbox.npy"
    np.save(box_path, boxes)
    out = tmp_path / "out"
    result = write_to_hdf5(dat_file, output_folder=out, delta_t=10_000, max_duration=100_000,
                           box_labels=box_path)
    assert [os.path.basename(p) for p in result.outputs] == ["rec_0.h5", "rec_1.h5", "rec_2.h5"]
    whole = expected_rows(dat_file, 10_000, H0, W0)
    last_ts = int(open_reader(dat_file).read_all()["t"][-1])
    parts = [rows_of(p) for p in result.outputs]
    assert [len(p) for p in parts] == [10, 10, last_ts // 10_000 + 1 - 20]
    np.testing.assert_array_equal(np.concatenate(parts), whole[:sum(map(len, parts))])
    labels = [np.load(out / f"rec_td_{i}_bbox.npy") for i in range(3)]
    assert [b["class_id"].tolist() for b in labels] == [[0, 1], [2, 3], [4]]
    assert [b["t"].tolist() for b in labels] == [[5_000, 100_000], [1, 100_000], [29_000]]
    with pytest.raises(ArgumentError, match="multiple"):
        write_to_hdf5(dat_file, output_folder=out, delta_t=30_000, max_duration=100_000)


def test_split_label_with_start_ts(tmp_path):
    boxes = np.zeros(3, EventBbox)
    boxes["t"] = [10, 500, 900]
    path = tmp_path / "a_bbox.npy"
    np.save(path, boxes)
    (written,) = split_label(path, tmp_path, start_ts=500)
    assert written == str(path)                      # same basename in the output folder
    assert np.load(written)["t"].tolist() == [0, 400]


def test_naming_skip_and_overwrite(tmp_path, dat_file):
    assert output_basename("/a/b/rec_td.dat") == "rec"
    assert output_basename("x.y.raw") == "x" and output_basename("moving_cd.raw") == "moving"
    assert write_to_hdf5(dat_file, output_folder=tmp_path, delta_t=10_000).status == "written"
    mtime = os.stat(tmp_path / "rec.h5").st_mtime_ns
    assert write_to_hdf5(dat_file, output_folder=tmp_path, delta_t=10_000).status == "skipped"
    assert os.stat(tmp_path / "rec.h5").st_mtime_ns == mtime
    again = write_to_hdf5(dat_file, output_folder=tmp_path, delta_t=5_000, overwrite=True)
    assert again.status == "written" and read_tensor_attrs(tmp_path / "rec.h5").delta_t == 5_000


def test_interrupted_write_leaves_no_complete_looking_file(tmp_path, dat_file, monkeypatch):
    monkeypatch.setattr(h5mod, "PROGRESS_PERIOD_S", 0.0)

    def interrupt(kind, payload):
        if kind == "advance":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_to_hdf5(dat_file, output_folder=tmp_path / "out", delta_t=1_000, progress=interrupt,
                      max_duration=10_000)
    assert os.listdir(tmp_path / "out") == []


def crash_or_write(job, report):
    """A job function for run_parallel: dies hard mid-write for the 'crash' job."""
    if job["crash"]:
        def die(kind, payload):
            if kind == "advance":
                os._exit(3)
        h5mod.PROGRESS_PERIOD_S = 0.0
        return write_to_hdf5(job["path"], output_folder=job["out"], delta_t=1_000, progress=die)
    return write_to_hdf5(job["path"], output_folder=job["out"], delta_t=10_000)


def test_crashing_worker_is_a_failure_not_a_hang(tmp_path, dat_file):
    other = tmp_path / "other.dat"
    other.write_bytes(dat_file.read_bytes())
    events = []
    run_parallel(crash_or_write, [dict(path=str(dat_file), out=str(tmp_path / "o"), crash=True),
                                  dict(path=str(other), out=str(tmp_path / "o"), crash=False)],
                 2, lambda kind, index, payload: events.append((kind, index, payload)))
    final = {index: (kind, payload) for kind, index, payload in events
             if kind in ("done", "failed")}
    assert final[0][0] == "failed" and "exit code 3" in final[0][1]
    assert final[1][0] == "done" and final[1][1].rows > 0
    names = os.listdir(tmp_path / "o")
    assert "other.h5" in names and "rec.h5" not in names
    assert all(n == "other.h5" or ".partial-" in n for n in names)


def test_generate_hdf5_many_inputs_and_failures(tmp_path, dat_file):
    raw = tmp_path / "cam_cd.raw"
    with RawWriter(raw, height=H0, width=W0) as w:
        w.write(make_events(seed=1))
    broken = tmp_path / "broken.raw"
    broken.write_bytes(b"% evt 3.0\n% end\n\x01")
    results = generate_hdf5([dat_file, raw, broken], tmp_path / "out", "histo", 10_000,
                            n_processes=1, raise_on_error=False)
    assert [r.status for r in results] == ["written", "written", "failed"]
    assert str(broken) in results[2].error
    np.testing.assert_array_equal(rows_of(tmp_path / "out" / "cam.h5"),
                                  expected_rows(raw, 10_000, H0, W0)[:results[1].rows])
    with pytest.raises(EvstreamError, match="1 of 3"):
        generate_hdf5([dat_file, raw, broken], tmp_path / "out", "histo", 10_000, n_processes=1)


def test_hdf5_event_file_input_and_geometry_errors(tmp_path):
    events = make_events()
    src = tmp_path / "ev.hdf5"
    with h5py.File(src, "w") as f:                 # formats.md §10, uncompressed
        f.attrs["geometry"] = f"{W0}x{H0}"
        f.create_group("CD").create_dataset("events", data=events, chunks=(16384,))
    result = write_to_hdf5(src, output_folder=tmp_path / "o", delta_t=20_000, height=12, width=16)
    assert result.rows == int(events["t"][-1]) // 20_000 + 1
    with pytest.raises(GeometryError, match="power of two"):
        write_to_hdf5(src, output_folder=tmp_path / "p", height=20, width=30)


def test_corrupt_input_names_the_file(tmp_path):
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(FileFormatError) as info:
        write_to_hdf5(bad, output_folder=tmp_path / "o")
    assert str(bad) in str(info.value)
    assert not (tmp_path / "o" / "bad.h5").exists()


def test_hdf5_writer_api(tmp_path):
    path = tmp_path / "w.h5"
    with HDF5Writer(path, "data", (1, 2, 3), dtype=np.float32, attrs={"a": 1, "b": None}) as w:
        w.write(np.ones((150, 1, 2, 3), np.float32), last_timestamps=np.arange(150))
        w.set_cursor(140)
        w.write(np.zeros((1, 2, 3), np.float32), last_timestamps=[7])
        with pytest.raises(ArgumentError):
            w.set_cursor(151)
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (150, 1, 2, 3) and f["last_timestamps"].shape == (150,)
        assert f["data"][140].sum() == 0 and f["last_timestamps"][140] == 7
        assert dict(f["data"].attrs) == {"a": 1}
