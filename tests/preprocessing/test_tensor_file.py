"""evstream.preprocessing.tensor_file: the one resize rule, the dtype rule of values read, the open
file (rows into a caller's array, last_timestamps), tensor-file detection, and no torch at import."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evstream.data.scheduler import FileMetadata
from evstream.errors import FileFormatError, GeometryError
from evstream.io import DatWriter, EventCD
from evstream.preprocessing.hdf5 import write_to_hdf5
from evstream.preprocessing.tensor_file import (MODES, TensorFile, check_output_size,
                                                is_tensor_file, read_tensor_attrs,
                                                resize_method, resize_rows, tensor_output_dtype)


def test_importing_the_module_does_not_import_torch():
    code = ("import sys, evstream.preprocessing, evstream.preprocessing.tensor_file, "
            "evstream.preprocessing.hdf5; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resize_method_table():
    assert resize_method((48, 96), (48, 96)) is None
    assert resize_method((48, 96), (24, 48)) == "area"
    assert resize_method((48, 96), (48, 40)) == "area"        # one axis equal, one shrinks
    assert resize_method((48, 96), (20, 33)) == "area"
    assert resize_method((48, 96), (60, 120)) == "bilinear"
    assert resize_method((48, 96), (40, 120)) == "bilinear"   # one axis grows
    assert MODES == ("delta_t", "n_events")


def test_check_output_size():
    assert check_output_size((3, 7)) == (3, 7)
    assert check_output_size(np.array([4, 5])) == (4, 5)
    for bad in [(0, 4), (4, -1), (None, 4), (4,)]:
        with pytest.raises(GeometryError):
            check_output_size(bad)
    with pytest.raises(GeometryError):
        resize_rows(np.zeros((1, 1, 4, 4), np.float32), (4, 0))


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_integer_ratio_shrink_is_the_mean_of_each_block(k):
    rng = np.random.default_rng(k)
    n, c, h, w = 3, 2, 4 * k, 6 * k
    # integer rows (event counts), any integer dtype
    counts = rng.integers(0, 40, (n, c, h, w)).astype(np.int16)
    reference = counts.reshape(n, c, 4, k, 6, k).astype(np.float64).mean((3, 5))
    out = resize_rows(counts, (4, 6))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, reference.astype(np.float32))
    # float rows (and a non-contiguous view): the float64 mean, rounded once to float32
    values = rng.random((n, c, h, 2 * w), dtype=np.float32)[..., ::2]
    np.testing.assert_array_equal(
        resize_rows(values, (4, 6)),
        values.astype(np.float64).reshape(n, c, 4, k, 6, k).mean((3, 5)).astype(np.float32))
    # different ratios on the two axes: blocks of k x 2
    np.testing.assert_array_equal(
        resize_rows(counts, (4, 3 * k)),
        counts.reshape(n, c, 4, k, 3 * k, 2).astype(np.float64).mean((3, 5)).astype(np.float32))


def test_upscale_is_bilinear_with_aligned_corners_by_hand():
    rows = np.array([[[[0, 2], [4, 6]]]], np.float32)
    out = resize_rows(rows, (3, 3))
    np.testing.assert_array_equal(out[0, 0], [[0, 1, 2], [2, 3, 4], [4, 5, 6]])


def test_non_integer_shrink_is_torch_area_and_out_is_written():
    rows = np.random.default_rng(1).random((2, 3, 10, 14), dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(rows), size=(4, 6), mode="area").numpy()
    out = np.full((2, 3, 4, 6), -1, np.float32)
    assert resize_rows(rows, (4, 6), out=out) is out
    np.testing.assert_array_equal(out, expected)
    same = resize_rows(rows, (10, 14))
    assert same is rows                                       # nothing to do: no copy
    empty = resize_rows(np.zeros((0, 3, 10, 14), np.float32), (4, 6))
    assert empty.shape == (0, 3, 4, 6)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tensor_file")
    rng = np.random.default_rng(3)
    ev = np.zeros(3000, EventCD)
    ev["t"] = np.sort(rng.integers(0, 5000, len(ev)))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 32, len(ev)), rng.integers(0, 16, len(ev)), 1
    path = folder / "r.dat"
    with DatWriter(path, 16, 32) as w:
        w.write(ev)
    return str(path), folder


def test_dtype_rule_of_values_read(recording):
    path, folder = recording
    u8 = write_to_hdf5(path, output_folder=str(folder / "u8"), delta_t=1000, preprocess="histo",
                       store_as_uint8=True).outputs[0]
    q = write_to_hdf5(path, output_folder=str(folder / "q"), delta_t=1000,
                      preprocess="histo_quantized").outputs[0]
    a_u8, a_q = read_tensor_attrs(u8), read_tensor_attrs(q)
    assert a_u8.dtype == np.uint8 and a_q.dtype.kind in "iu"
    assert tensor_output_dtype(a_u8) == np.float32
    assert tensor_output_dtype(a_q) == a_q.dtype
    assert tensor_output_dtype(a_q, (16, 32)) == a_q.dtype    # the stored size: no resize
    assert tensor_output_dtype(a_q, (8, 16)) == np.float32    # a mean is not an integer
    with TensorFile(u8) as f:
        raw = f.data[:]
        np.testing.assert_array_equal(f.read(0, 99), raw.astype(np.float32) / np.float32(255))
        assert f.read(0, 2, (8, 16)).shape == (2, 2, 8, 16)
    with TensorFile(q) as f:
        rows = f.read(1, 3)
        assert rows.dtype == a_q.dtype and np.array_equal(rows, f.data[1:3])


def test_open_file_reads_rows_into_a_batch_slot_and_last_timestamps_once(recording):
    path, folder = recording
    nev = write_to_hdf5(path, output_folder=str(folder / "nev"), preprocess="histo",
                        mode="n_events", n_events=500, delta_t=0).outputs[0]
    f = TensorFile(nev)
    try:
        assert f.rows == 6 and f.attrs.mode == "n_events"
        with h5py.File(nev, "r") as g:
            expected_ts, expected = g["last_timestamps"][:], g["data"][:]
        np.testing.assert_array_equal(f.last_timestamps, expected_ts)
        assert f.last_timestamps.dtype == np.int64
        batch = np.full((3, 2) + f.row_shape, 7, np.float32)
        assert f.read_into(4, 7, batch, slot=1) == 2          # two rows left in the file
        np.testing.assert_array_equal(batch[:2, 1], expected[4:6])
        assert np.all(batch[2, 1] == 7) and np.all(batch[:, 0] == 7)
        # a non-contiguous destination takes the generic path, same values
        strided = np.zeros((2,) + f.row_shape, np.float64)
        assert f.read_into(0, 2, strided) == 2
        np.testing.assert_array_equal(strided, expected[:2])
    finally:
        f.close()
    dt = write_to_hdf5(path, output_folder=str(folder / "dt"), delta_t=1000,
                       preprocess="histo").outputs[0]
    with TensorFile(dt) as g:
        assert g.last_timestamps is None


def test_is_tensor_file_is_the_one_detection_rule(recording, tmp_path):
    path, folder = recording
    tensors = write_to_hdf5(path, output_folder=str(folder / "d"), delta_t=1000,
                            preprocess="histo").outputs[0]
    events = tmp_path / "ev.h5"
    with h5py.File(events, "w") as f:
        g = f.create_group("events")
        for name, dtype in (("x", "u2"), ("y", "u2"), ("p", "u1"), ("t", "i8")):
            g.create_dataset(name, data=np.zeros(3, dtype))
    other = tmp_path / "other.HDF5"
    with h5py.File(other, "w") as f:
        f.create_dataset("something", data=np.zeros(3))
    assert is_tensor_file(tensors)
    assert not is_tensor_file(events)
    assert is_tensor_file(other)                  # not events: the tensor-file path says why
    with pytest.raises(FileFormatError, match="not a tensor file"):
        TensorFile(other)
    assert is_tensor_file(tmp_path / "missing.h5")
    assert not is_tensor_file(path) and not is_tensor_file(tmp_path / "x.npy")
    not_hdf5 = tmp_path / "fake.h5"
    not_hdf5.write_bytes(b"not hdf5 at all")
    with pytest.raises(FileFormatError):
        is_tensor_file(not_hdf5)
    # the scheduler's precomputed test is the same rule (an HDF5 event file is not precomputed)
    assert FileMetadata(tensors, 1000, 1, 1).is_precomputed()
    assert not FileMetadata(str(events), 1000, 1, 1).is_precomputed()
