"""Damaged tensor files, box files and label maps (issue 12, items 2-5): an EvstreamError naming
the file (in the main process as in workers), or counted and warned drops; never a crash or
silently wrong data."""

from __future__ import annotations

import json
import re
import time
import warnings

import h5py
import numpy as np
import pytest
import torch

from evstream.data import HDF5Iterator, SequentialDataLoader
from evstream.data import box_processing as box_api
from evstream.data.scheduler import FileMetadata
from evstream.errors import EvstreamError, FileFormatError
from evstream.preprocessing.hdf5 import read_tensor_attrs
from seqloader_data import make_boxes, tensor_rows, write_label_map, write_tensor_file

SHAPE = (2, 240, 320)          # stored rows of a 480x640 sensor (k = 1)
SENSOR = (480, 640)


def small_file(path, **kw):
    return write_tensor_file(path, tensor_rows(6, SHAPE, active=(slice(20, 200), slice(20, 300))),
                             sensor=SENSOR, **kw)


def set_attr(path, key, value):
    with h5py.File(path, "r+") as f:
        f["data"].attrs[key] = value


def load_everything(path, num_workers=0):
    """Every way a tensor file is read: its attributes, HDF5Iterator, SequentialDataLoader."""
    read_tensor_attrs(path)
    list(HDF5Iterator(path, num_tbins=2))
    loader = SequentialDataLoader([path], 50_000, "histo", [2, 2, 240, 320], batch_size=1,
                                  num_workers=num_workers)
    return [b["inputs"].clone() for b in loader]


# ----------------------------------------------------------------------------- item 2
@pytest.mark.parametrize("key,value,what", [
    ("event_input_height", -240, "event_input_height=-240"),       # before: 0 boxes
    ("event_input_height", 480 * 2, "are not the stored 240x320"),   # before: y, h halved
    ("event_input_height", 10 ** 12, "event_input_height=1000000000000"),   # before: h = 0
    ("event_input_width", 641, "are not the stored 240x320"),
    ("store_as_uint8", "False", "store_as_uint8='False' is not a boolean"),  # before: x / 255
    ("store_as_uint8", True, "store_as_uint8 is set on rows of dtype float32"),
    ("shape", np.array([2, 120, 160]), "attribute shape"),
])
def test_inconsistent_attributes_name_file_and_attribute(tmp_path, key, value, what):
    path = small_file(tmp_path / "rec.h5")
    set_attr(path, key, value)
    with pytest.raises(FileFormatError, match=re.escape(f"{path}: ") + ".*" + re.escape(what)):
        read_tensor_attrs(path)
    with pytest.raises(FileFormatError, match=re.escape(path)):
        HDF5Iterator(path)
    with pytest.raises(FileFormatError, match=re.escape(path)):
        SequentialDataLoader([path], 50_000, "histo", [2, 2, 240, 320], batch_size=1,
                             num_workers=0)


def test_consistent_attributes_still_load(tmp_path):
    path = small_file(tmp_path / "rec.h5")
    attrs = read_tensor_attrs(path)
    assert (attrs.height, attrs.width, attrs.downsampling_factor) == (480, 640, 1)
    legacy = write_tensor_file(tmp_path / "old.h5", tensor_rows(4, SHAPE), legacy_shift=1)
    attrs = read_tensor_attrs(legacy)
    assert (attrs.height, attrs.width, attrs.downsampling_factor) == (480, 640, 1)
    set_attr(path, "delta_t", 50_000.0)                  # an integral float is accepted
    assert read_tensor_attrs(path).delta_t == 50_000


# ----------------------------------------------------------------------------- item 3
@pytest.mark.parametrize("key,value", [
    ("delta_t", "fifty"), ("delta_t", np.array([50_000, 1])), ("delta_t", -5), ("delta_t", 0.5),
    ("event_input_height", "tall"), ("event_input_height", 0),
    ("events_to_tensor", np.bytes_(b"\xff\xfe\x00garbage")), ("events_to_tensor", ""),
    ("mode", 3), ("n_events", -1), ("delta_t", float("nan")),
])
def test_bad_attribute_values(tmp_path, key, value):
    """Before: TypeError, ValueError, ZeroDivisionError, UnicodeDecodeError without the file."""
    path = small_file(tmp_path / "rec.h5")
    set_attr(path, key, value)
    with pytest.raises(FileFormatError, match=re.escape(path)):
        load_everything(path)


def test_negative_legacy_shift(tmp_path):
    path = write_tensor_file(tmp_path / "old.h5", tensor_rows(4, SHAPE), legacy_shift=-1)
    with pytest.raises(FileFormatError, match=re.escape(path) + ".*shift=-1"):
        load_everything(path)


def test_compound_data_dtype(tmp_path):
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", shape=(3, 2, 4, 4), dtype=np.dtype([("a", "f4"), ("b", "i2")]))
        ds.attrs["events_to_tensor"] = np.bytes_(b"histo")
        ds.attrs["delta_t"] = 50_000
    with pytest.raises(FileFormatError, match=re.escape(str(path)) + ".*dtype"):
        read_tensor_attrs(path)


def corrupt_chunk(path, row=3):
    with h5py.File(path, "r") as f:
        info = f["data"].id.get_chunk_info(row)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + 4)
        f.write(b"\x00\xff" * 64)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_corrupted_compressed_chunk(tmp_path, num_workers):
    """Before: OSError: Can't synchronously read data (no file name)."""
    path = small_file(tmp_path / "rec.h5")
    corrupt_chunk(path)
    with pytest.raises(FileFormatError, match=re.escape(path) + ".*cannot read rows"):
        list(HDF5Iterator(path, num_tbins=2))
    loader = SequentialDataLoader([path], 50_000, "histo", [2, 2, 240, 320], batch_size=1,
                                  num_workers=num_workers)
    with pytest.raises(EvstreamError, match=re.escape(path) + ".*cannot read rows"):
        list(loader)


def test_directory_given_as_a_tensor_file(tmp_path):
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(FileFormatError, match="dir.h5: is a directory"):
        HDF5Iterator(tmp_path / "dir.h5")


def labelled_file(tmp_path, boxes):
    path = small_file(tmp_path / "rec.h5")
    box_path = tmp_path / "rec_bbox.npy"
    np.save(box_path, boxes)
    lookup = box_api.create_class_lookup(write_label_map(tmp_path / "lm.json"))
    return path, str(box_path), lookup


def _load(path, lookup, num_workers=0):
    from functools import partial
    loader = SequentialDataLoader([path], 50_000, "histo", [2, 2, 240, 320], batch_size=1,
                                  num_workers=num_workers,
                                  load_labels=partial(box_api.load_boxes, class_lookup=lookup))
    return list(loader)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_string_box_field(tmp_path, num_workers):
    dtype = np.dtype([("t", "<i8"), ("x", "U4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                      ("class_id", "<u4")])
    boxes = np.zeros(2, dtype)
    boxes["t"] = [10_000, 60_000]
    path, box_path, lookup = labelled_file(tmp_path, boxes)
    with pytest.raises(EvstreamError, match=re.escape(box_path) + ".*box field 'x' has dtype"):
        _load(path, lookup, num_workers)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_class_id_beyond_the_lookup_names_the_box_file(tmp_path, num_workers):
    boxes = make_boxes([10_000, 60_000], x=50, y=50, w=100, h=100, class_id=40, dx=200)
    path, box_path, lookup = labelled_file(tmp_path, boxes)
    with pytest.raises(EvstreamError, match=re.escape(box_path) + ".*class id 40 outside"):
        _load(path, lookup, num_workers)


# ----------------------------------------------------------------------------- item 4
@pytest.mark.parametrize("content,what", [
    ('{"-1": "car", "0": "pedestrian"}', "label map key '-1'"),   # before: aliased class -1
    ('{"2000000000": "car"}', "label map key '2000000000'"),      # before: 35 s, 15.9 GB
    ('{"1_0": "car"}', "label map key '1_0'"),
    ('{" 1": "car"}', "label map key ' 1'"),
    ('{"0": 5}', "must be a non-empty string"),
    ('{"0": ""}', "must be a non-empty string"),
    ('["car"]', "a label map is a JSON object"),
    ('{"0": "car", "00": "bus"}', "class id 0 appears twice"),
])
def test_bad_label_maps(tmp_path, content, what):
    path = tmp_path / "label_map_dictionary.json"
    path.write_text(content)
    t0 = time.perf_counter()
    with pytest.raises(FileFormatError, match=re.escape(f"{path}: ") + ".*" + re.escape(what)):
        box_api.create_class_lookup(path)
    assert time.perf_counter() - t0 < 1.0


def test_binary_label_map(tmp_path):
    """Before: UnicodeDecodeError."""
    path = tmp_path / "lm.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(FileFormatError, match=re.escape(str(path)) + ".*not UTF-8"):
        box_api.create_class_lookup(path)


def test_good_label_map_and_bound(tmp_path):
    path = tmp_path / "lm.json"
    path.write_text(json.dumps({"0": "pedestrian", "3": "car", str(box_api.MAX_CLASS_ID): "x"}))
    lookup = box_api.create_class_lookup(path, ["car"])
    assert len(lookup) == box_api.MAX_CLASS_ID + 1
    assert lookup[3] == 1 and lookup[0] == -1 and (lookup == 1).sum() == 1


# ----------------------------------------------------------------------------- item 5
def test_undrawable_boxes_are_counted_and_warned_once_per_file(tmp_path):
    """Before: clip_boxes dropped NaN / inf / out-of-frame boxes without a word."""
    times = [10_000, 20_000, 30_000, 60_000, 70_000, 80_000]
    boxes = make_boxes(times, x=100.0, y=100.0, w=100.0, h=80.0, dx=80.0)
    boxes["x"][0] = np.nan                      # non-finite
    boxes["w"][1] = np.inf                      # non-finite
    boxes["x"][3] = 5000.0                      # right of the frame: empty once clipped
    boxes["h"][4] = -30.0                       # negative height
    path, box_path, lookup = labelled_file(tmp_path, boxes)
    meta = FileMetadata(path, 300_000, 50_000, 2)
    tensor = torch.from_numpy(tensor_rows(2, SHAPE, active=(slice(0, 240), slice(0, 320))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, _ = box_api.load_boxes(meta, 0, 50_000, tensor, class_lookup=lookup)
        second, _ = box_api.load_boxes(meta, 50_000, 50_000, tensor, class_lookup=lookup)
    dropped = [w for w in caught if issubclass(w.category, box_api.DroppedBoxesWarning)]
    assert len(dropped) == 1 and str(dropped[0].message).startswith(
        f"{box_path}: 2 of 3 boxes dropped (2 with a NaN or infinite coordinate, 0 outside")
    assert box_api.dropped_box_counts()[box_path] == {"non_finite": 2, "degenerate": 2}
    assert [len(b) for b in first] == [0, 1] and [len(b) for b in second] == [0, 1]
    assert np.isfinite(first[1][["x", "y", "w", "h"]].tolist()).all()


def test_clip_boxes_without_a_path_is_unchanged():
    boxes = make_boxes([1, 2], x=10.0, y=10.0, w=50.0, h=50.0, dx=100.0)
    boxes["x"][1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = box_api.clip_boxes(boxes, 320, 240)
    assert kept[["x", "y", "w", "h"]].tolist() == [(10, 10, 50, 50)]


def test_damaged_npy_header_that_still_parses(tmp_path):
    """Found by the property test: a header length byte changed (b'\\x00\\xcf' at offset 7) made
    numpy read the boxes from a shifted offset, silently (garbage boxes, no error)."""
    boxes = make_boxes(np.arange(1, 12) * 25_000, x=2.0, y=3.0, w=9.0, h=8.0, dx=1.0)
    path, box_path, lookup = labelled_file(tmp_path, boxes)
    with open(box_path, "r+b") as f:
        f.seek(7)
        f.write(b"\x00\xcf")
    with pytest.raises(FileFormatError, match=re.escape(box_path) + ".*the .npy header describes"):
        box_api.load_box_events(FileMetadata(path, 300_000, 50_000, 2), 0, 300_000)
