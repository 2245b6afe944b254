"""HDF5Iterator: chunks of T rows as float32 tensors, last chunk kept, uint8 / resize / n_events,
checks, files in the original's layout (legacy attributes, bytes name), fast codec, corrupt files."""

from __future__ import annotations

import cv2
import h5py
import hdf5plugin
import numpy as np
import pytest
import torch

from evstream.data import HDF5Iterator
from evstream.errors import ArgumentError, FileFormatError, GeometryError
from evstream.preprocessing.hdf5 import get_tensor_file_duration, read_tensor_attrs


def original_file(path, rows, name=b"histo", attrs=None, compression="gzip", last_ts=None,
                  dtype=np.float32):
    """A tensor file in the original's layout (formats.md §9), built with h5py."""
    with h5py.File(path, "w") as f:
        opts = {"compression": "gzip"} if compression == "gzip" else dict(compression or {})
        d = f.create_dataset("data", data=rows.astype(dtype), maxshape=(None, *rows.shape[1:]),
                             chunks=(1, *rows.shape[1:]), **opts)
        d.attrs["events_to_tensor"] = np.bytes_(name)
        for k, v in (attrs or {}).items():
            d.attrs[k] = v
        if last_ts is not None:
            f.create_dataset("last_timestamps", data=np.asarray(last_ts, np.int64), chunks=(1,),
                             maxshape=(None,), compression="gzip")


def rows(n=10, c=2, h=8, w=16, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def test_legacy_original_file_loads(tmp_path):
    data = rows()
    path = tmp_path / "legacy.h5"
    original_file(path, data, attrs={"delta_t": np.uint32(50_000), "shape": (2, 8, 16),
                                     "max_incr_per_pixel": 5, "shift": 2,
                                     "downsampling_factor": 2})
    info = read_tensor_attrs(path)
    assert (info.name, info.mode, info.delta_t) == ("histo", "delta_t", 50_000)
    assert (info.height, info.width, info.downsampling_factor) == (32, 64, 2)
    assert info.kwargs == {"max_incr_per_pixel": 5}
    assert get_tensor_file_duration(path) == 10 * 50_000
    it = HDF5Iterator(path, num_tbins=3)
    it.checks("histo", 50_000)
    chunks = list(it)
    assert len(it) == len(chunks) == 3                     # 9 rows: the last complete chunk is kept
    assert all(c.dtype == torch.float32 and c.shape == (3, 2, 8, 16) for c in chunks)
    np.testing.assert_array_equal(torch.cat(chunks).numpy(), data[:9])
    assert it.get_time() == 9 * 50_000


def test_checks_give_clear_errors(tmp_path):
    path = tmp_path / "f.h5"
    original_file(path, rows(4), attrs={"delta_t": np.uint32(10_000), "mode": "delta_t",
                                        "max_incr_per_pixel": 5})
    it = HDF5Iterator(path)
    with pytest.raises(ArgumentError, match="delta_t 10000 µs, not 50000") as info:
        it.checks("histo", 50_000)
    assert str(path) in str(info.value)
    with pytest.raises(ArgumentError, match="preprocessing 'histo', not 'event_cube'"):
        it.checks("event_cube", 10_000)
    with pytest.raises(ArgumentError, match="mode"):
        it.checks("histo", mode="n_events", n_events=10)
    with pytest.raises(ArgumentError, match="max_incr_per_pixel"):
        HDF5Iterator(path, preprocess_kwargs={"max_incr_per_pixel": 3})


def test_uint8_rows_are_divided_in_float_and_resized_by_area(tmp_path):
    data = rows(6, h=8, w=16)
    stored = np.round(data * 255).astype(np.uint8)
    path = tmp_path / "u8.h5"
    original_file(path, stored, dtype=np.uint8,
                  attrs={"delta_t": np.uint32(1000), "store_as_uint8": True,
                         "event_input_height": 8, "event_input_width": 16})
    full = torch.cat(list(HDF5Iterator(path, num_tbins=2))).numpy()
    np.testing.assert_array_equal(full, stored.astype(np.float32) / np.float32(255))
    small = torch.cat(list(HDF5Iterator(path, num_tbins=2, height=4, width=8))).numpy()
    expected = np.stack([[cv2.resize(full[i, c], (8, 4), interpolation=cv2.INTER_AREA)
                          for c in range(2)] for i in range(6)])
    np.testing.assert_allclose(small, expected, rtol=1e-6)
    np.testing.assert_allclose(small, full.reshape(6, 2, 4, 2, 8, 2).mean((3, 5)), rtol=1e-5)
    assert small.dtype == np.float32 and len(np.unique(small)) > 256     # not re-quantized
    # any positive size: the one resize rule of every loader (area when neither axis grows)
    odd = torch.cat(list(HDF5Iterator(path, num_tbins=2, height=3, width=6)))
    assert torch.equal(odd, torch.nn.functional.interpolate(torch.from_numpy(full), size=(3, 6),
                                                            mode="area"))
    with pytest.raises(GeometryError, match="positive"):
        HDF5Iterator(path, height=0, width=6)


def test_n_events_mode_and_start_ts(tmp_path):
    path = tmp_path / "ne.h5"
    last_ts = [100, 250, 400, 800, 1000, 1500, 1600]
    original_file(path, rows(7), last_ts=last_ts,
                  attrs={"delta_t": np.uint32(0), "mode": "n_events", "n_events": 500})
    assert get_tensor_file_duration(path) == 1600
    it = HDF5Iterator(path, num_tbins=2, start_ts=300)
    it.checks("histo", mode="n_events", n_events=500)
    assert len(it) == 2
    chunks = list(it)
    np.testing.assert_array_equal(torch.cat(chunks).numpy(), rows(7)[2:6])
    assert it.get_time() == 1500


def test_delta_t_start_ts_skips_rows(tmp_path):
    path = tmp_path / "d.h5"
    original_file(path, rows(10), attrs={"delta_t": np.uint32(1000)})
    it = HDF5Iterator(path, num_tbins=4, start_ts=2500)
    assert len(it) == 2 and it.get_time() == 2500
    np.testing.assert_array_equal(torch.cat(list(it)).numpy(), rows(10)[2:10])
    assert it.get_time() == 10_000


def test_fast_codec_and_pickling(tmp_path):
    import pickle
    path = tmp_path / "blosc.h5"
    original_file(path, rows(4), compression=hdf5plugin.Blosc(cname="lz4"),
                  attrs={"delta_t": np.uint32(1000)})
    it = pickle.loads(pickle.dumps(HDF5Iterator(path, num_tbins=4)))
    np.testing.assert_array_equal(next(iter(it)).numpy(), rows(4))


def test_corrupt_or_wrong_files(tmp_path):
    good = tmp_path / "good.h5"
    original_file(good, rows(50, h=64, w=64), attrs={"delta_t": np.uint32(1000)})
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FileFormatError) as info:
        list(HDF5Iterator(cut, num_tbins=5))
    assert str(cut) in str(info.value)
    events = tmp_path / "events.h5"
    with h5py.File(events, "w") as f:
        f.create_group("CD").create_dataset("events", shape=(3,), dtype=[("t", "<i8")])
    with pytest.raises(FileFormatError, match="event file"):
        HDF5Iterator(events)
    noname = tmp_path / "noname.h5"
    with h5py.File(noname, "w") as f:
        f.create_dataset("data", shape=(2, 1, 2, 2), dtype="f4")
    with pytest.raises(FileFormatError, match="events_to_tensor"):
        HDF5Iterator(noname)


def test_round_trip_from_writer(tmp_path):
    from evstream.io import DatWriter, EventCD, EventsIterator
    from evstream.preprocessing import CDProcessor
    from evstream.preprocessing.hdf5 import write_to_hdf5
    rng = np.random.default_rng(3)
    ev = np.zeros(5000, EventCD)
    ev["t"] = np.sort(rng.integers(0, 95_000, 5000))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 32, 5000), rng.integers(0, 16, 5000), 1
    with DatWriter(tmp_path / "r.dat", 16, 32) as w:
        w.write(ev)
    write_to_hdf5(tmp_path / "r.dat", output_folder=tmp_path, delta_t=10_000, compression="blosc")
    it = HDF5Iterator(tmp_path / "r.h5", num_tbins=5)
    got = torch.cat(list(it)).numpy()
    proc = CDProcessor(16, 32, 5, "histo")
    windows = list(EventsIterator(tmp_path / "r.dat", delta_t=50_000, relative_timestamps=True))
    np.testing.assert_array_equal(got, np.concatenate([proc(w, 50_000, copy=True) for w in windows]))
