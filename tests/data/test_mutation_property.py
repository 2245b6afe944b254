"""Property test (issue 12, "Done when"): mutate one attribute, the ``/data`` dataset or the box
array of a small labelled tensor file and read it with every reader. The outcome must be an
``EvstreamError`` naming the mutated file, or exactly the unmutated file's output (for a box made
non-finite: the output of the same box moved out of the frame, which is dropped the same way,
plus a DroppedBoxesWarning naming the box file).

A hang fails the test through its timeout; a crash kills the run. The outcome counts are written
to the captured output (``pytest -s`` shows them).
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import warnings
from functools import partial

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evstream.data import HDF5Iterator, SequentialDataLoader
from evstream.data import box_processing as box_api
from evstream.errors import EvstreamError
from evstream.preprocessing.hdf5 import read_tensor_attrs
from seqloader_data import make_boxes, tensor_rows, write_label_map, write_tensor_file

SENSOR, SHAPE, ROWS, DT = (24, 32), (2, 12, 16), 6, 50_000
DELETE = object()
SKIP = object()
OUTCOMES: collections.Counter = collections.Counter()


def base_files(folder):
    """The unmutated labelled tensor file, its box file and the class lookup."""
    rows = tensor_rows(ROWS, SHAPE, active=(slice(0, 12), slice(0, 16)))
    path = write_tensor_file(os.path.join(folder, "rec.h5"), rows, sensor=SENSOR)
    boxes = make_boxes(np.arange(1, 12) * 25_000, x=2.0, y=3.0, w=9.0, h=8.0, dx=1.0)
    boxes["class_id"] = np.arange(11) % 3
    box_path = os.path.join(folder, "rec_bbox.npy")
    np.save(box_path, boxes)
    lookup = box_api.create_class_lookup(
        write_label_map(os.path.join(folder, "lm.json"), {"0": "a", "1": "b", "2": "c"}))
    return path, box_path, lookup


def read_all(path, lookup):
    """What every reader makes of the file: attributes, HDF5Iterator rows, loader batches."""
    attrs = read_tensor_attrs(path)
    rows = np.stack([r.numpy() for r in HDF5Iterator(path, num_tbins=2)])
    loader = SequentialDataLoader([path], DT, "histo", [2] + list(SHAPE), batch_size=1,
                                  num_workers=0,
                                  load_labels=partial(box_api.load_boxes, class_lookup=lookup))
    batches = [(b["inputs"].numpy().copy(),
                [[lab.tolist() for lab in per_t] for per_t in b["labels"]],
                b["frame_is_labeled"].numpy().tolist()) for b in loader]
    return (attrs.height, attrs.width, attrs.delta_t, attrs.shape, attrs.rows), rows, batches


def same(a, b) -> bool:
    (ma, ra, ba), (mb, rb, bb) = a, b
    if ma != mb or not np.array_equal(ra, rb) or len(ba) != len(bb):
        return False
    return all(np.array_equal(x[0], y[0]) and x[1] == y[1] and x[2] == y[2]
               for x, y in zip(ba, bb))


class Output(tuple):
    """read_all's result, with a short repr (hypothesis prints the test's arguments)."""

    def __repr__(self):
        return "<unmutated output>"


@pytest.fixture(scope="module")
def reference():
    folder = tempfile.mkdtemp()
    path, box_path, lookup = base_files(folder)
    yield Output(read_all(path, lookup))
    shutil.rmtree(folder)
    print(f"\nmutation property test outcomes: {dict(OUTCOMES)} "
          f"(inputs tried: {sum(OUTCOMES.values())})")


def check(folder, mutated_file, lookup, expected, outcome_key):
    path = os.path.join(folder, "rec.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got = read_all(path, lookup)
        except EvstreamError as exc:
            assert mutated_file in str(exc), f"error does not name {mutated_file}: {exc}"
            OUTCOMES[f"{outcome_key}: error"] += 1
            return
    assert same(got, expected), "silently different output"
    OUTCOMES[f"{outcome_key}: same output"] += 1


# ----------------------------------------------------------------------------- strategies
ATTR_KEYS = ["events_to_tensor", "delta_t", "event_input_height", "event_input_width", "shape",
             "mode", "n_events", "store_as_uint8", "downsampling_factor", "shift",
             "max_incr_per_pixel"]
ORIGINAL = {"events_to_tensor": b"histo", "delta_t": DT, "event_input_height": SENSOR[0],
            "event_input_width": SENSOR[1], "shape": list(SHAPE), "mode": "delta_t",
            "n_events": 0, "store_as_uint8": False, "downsampling_factor": 1, "shift": 1,
            "max_incr_per_pixel": 5.0}


def near_values(key):
    v = ORIGINAL[key]
    if isinstance(v, (bytes, str)):
        return st.sampled_from([v, v.upper() if isinstance(v, str) else v + b"\xff", "", b"",
                                "n_events", "diff", np.bytes_(b"\x80\x81"), 0])
    if isinstance(v, list):
        return st.sampled_from([np.array(v), np.array(v[::-1]), np.array(v[:2]),
                                np.array(v, dtype=np.float64), np.array([str(x) for x in v])])
    if isinstance(v, bool):
        return st.sampled_from([True, False, 0, 1, 2, "False", "True", b"\x01", np.array([1, 0])])
    return st.sampled_from([v, v * 2, v // 2, v + 1, -v, float(v), v + 0.5, str(v),
                            np.bytes_(str(v).encode()), np.array([v, v]), np.uint32(v), 0])


ANY_VALUE = st.one_of(
    st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.binary(max_size=6).map(np.bytes_), st.booleans(),
    st.lists(st.integers(-5, 10 ** 6), max_size=4).map(lambda v: np.array(v, dtype=np.int64)),
    st.just(DELETE))


@st.composite
def attribute_mutation(draw):
    key = draw(st.sampled_from(ATTR_KEYS))
    return key, draw(st.one_of(near_values(key), ANY_VALUE))


DATA_MUTATIONS = ["compound", "string", "float64", "bool_ndim3", "ndim5", "zero_channels",
                  "shape", "corrupt_chunk", "blosc", "no_compression", "last_timestamps",
                  "group", "missing"]


@st.composite
def data_mutation(draw):
    kind = draw(st.sampled_from(DATA_MUTATIONS))
    extra = {}
    if kind == "shape":
        extra["hw"] = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    if kind == "corrupt_chunk":
        extra["row"] = draw(st.integers(0, ROWS - 1))
        extra["offset"] = draw(st.integers(0, 40))
        extra["garbage"] = draw(st.binary(min_size=1, max_size=32))
    return kind, extra


BOX_FIELDS = ["t", "x", "y", "w", "h", "class_id"]


@st.composite
def box_mutation(draw):
    kind = draw(st.sampled_from(["dtype", "non_finite", "drop_field", "shape", "not_structured",
                                 "garbage_bytes"]))
    extra = {"field": draw(st.sampled_from(BOX_FIELDS)), "row": draw(st.integers(0, 10))}
    if kind == "dtype":
        extra["dtype"] = draw(st.sampled_from(["U6", "S4", "f8", "f4", "i8", "u8", "i2",
                                               "(2,)f4", "c8", "?"]))
    if kind == "non_finite":
        extra["field"] = draw(st.sampled_from(["x", "y", "w", "h"]))
        extra["value"] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if kind == "garbage_bytes":
        extra["garbage"] = draw(st.binary(min_size=1, max_size=64))
    return kind, extra


# ----------------------------------------------------------------------------- mutators
def mutate_attribute(path, key, value):
    with h5py.File(path, "r+") as f:
        attrs = f["data"].attrs
        if value is DELETE:
            if key in attrs:
                del attrs[key]
            return True
        try:
            attrs[key] = value
        except (TypeError, ValueError, OverflowError):
            return False                       # h5py cannot store it: not an input
    return True


def mutate_data(path, kind, extra):
    with h5py.File(path, "r+") as f:
        rows = f["data"][:]
        attrs = dict(f["data"].attrs)
        if kind == "corrupt_chunk":
            info = f["data"].id.get_chunk_info(extra["row"])
            offset = info.byte_offset + min(extra["offset"], info.size - 1)
        elif kind == "last_timestamps":
            f.create_dataset("last_timestamps", data=np.arange(ROWS)[::-1])
            return True
        elif kind == "group":
            del f["data"]
            f.create_group("data")
            return True
        elif kind == "missing":
            f.move("data", "other")
            return True
        else:
            del f["data"]
            if kind == "compound":
                new = np.zeros(rows.shape, dtype=[("a", "f4"), ("b", "i2")])
            elif kind == "string":
                new = rows.astype("S4")
            elif kind == "float64":
                new = rows.astype(np.float64)
            elif kind == "bool_ndim3":
                new = rows[:, 0] > 0
            elif kind == "ndim5":
                new = rows[:, None]
            elif kind == "zero_channels":
                new = rows[:, :0]
            elif kind == "shape":
                h, w = extra["hw"]
                consistent = any((h << k, w << k) == SENSOR for k in range(15))
                if consistent or (h, w) == SHAPE[1:]:
                    return False                 # a valid file of another size: not a mutation
                new = np.zeros((ROWS, 2, h, w), np.float32)
            else:
                new = rows
            kwargs = {"compression": "gzip"}
            if kind == "blosc":
                import hdf5plugin
                kwargs = dict(hdf5plugin.Blosc2(cname="zstd", clevel=1))
            elif kind == "no_compression":
                kwargs = {}
            chunks = (1,) + new.shape[1:] if 0 not in new.shape and new.ndim > 1 else None
            ds = f.create_dataset("data", data=new, chunks=chunks, **kwargs)
            for k, v in attrs.items():
                ds.attrs[k] = v
            return True
    with open(path, "r+b") as raw:
        raw.seek(offset)
        raw.write(extra["garbage"])
    return True


def mutate_boxes(box_path, kind, extra):
    """Returns the box array the expected output is computed from (None: must be an error or
    the unmutated output)."""
    boxes = np.load(box_path)
    field = extra["field"]
    if kind == "dtype":
        descr = [(n, extra["dtype"] if n == field else boxes.dtype[n]) for n in boxes.dtype.names]
        new = np.zeros(len(boxes), np.dtype(descr))
        for n in boxes.dtype.names:
            if n != field:
                new[n] = boxes[n]
            elif new.dtype[n].shape:
                new[n] = boxes[n][:, None]
            else:
                new[n] = boxes[n].astype(new.dtype[n])
        valid = not new.dtype[field].shape and new.dtype[field].kind in \
            box_api.BOX_FIELD_KINDS[field]
        lossless = valid and np.array_equal(new[field].astype(np.float64),
                                            boxes[field].astype(np.float64))
        np.save(box_path, new)
        if valid and not lossless:
            return SKIP                          # a valid file with other values: not a mutation
        return boxes if lossless else None
    if kind == "non_finite":
        new = boxes.copy()
        new[field][extra["row"]] = extra["value"]
        np.save(box_path, new)
        moved = boxes.copy()                     # the same box, out of the frame
        moved["x"][extra["row"]], moved["w"][extra["row"]] = -1000.0, 10.0
        return moved
    if kind == "drop_field":
        names = [n for n in boxes.dtype.names if n != field]
        new = np.zeros(len(boxes), [(n, boxes.dtype[n]) for n in names])
        for n in names:
            new[n] = boxes[n]
        np.save(box_path, new)
        return None
    if kind == "shape":
        np.save(box_path, np.stack([boxes, boxes]))
        return None
    if kind == "not_structured":
        np.save(box_path, boxes["x"])
        return None
    with open(box_path, "r+b") as raw:
        raw.seek(extra["row"] * 7)
        raw.write(extra["garbage"])
    return None


# ----------------------------------------------------------------------------- the property
#: Examples per test (150 in the suite; EVSTREAM_PROPERTY_EXAMPLES=N for a longer, random run).
EXAMPLES = int(os.environ.get("EVSTREAM_PROPERTY_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    derandomize="EVSTREAM_PROPERTY_EXAMPLES" not in os.environ,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.mark.timeout(600)
@SETTINGS
@given(mutation=attribute_mutation())
def test_attribute_mutations(reference, mutation):
    with tempfile.TemporaryDirectory() as folder:
        path, _, lookup = base_files(folder)
        assume(mutate_attribute(path, *mutation))
        check(folder, path, lookup, reference, "attribute")


@pytest.mark.timeout(600)
@SETTINGS
@given(mutation=data_mutation())
def test_dataset_mutations(reference, mutation):
    with tempfile.TemporaryDirectory() as folder:
        path, _, lookup = base_files(folder)
        assume(mutate_data(path, *mutation))
        check(folder, path, lookup, reference, "dataset")


@pytest.mark.timeout(600)
@SETTINGS
@given(mutation=box_mutation())
def test_box_mutations(reference, mutation):
    kind, extra = mutation
    with tempfile.TemporaryDirectory() as folder:
        path, box_path, lookup = base_files(folder)
        expected_boxes = mutate_boxes(box_path, kind, extra)
        assume(expected_boxes is not SKIP)
        expected = reference
        if kind == "non_finite":
            np.save(os.path.join(folder, "moved_bbox.npy"), expected_boxes)
            shutil.copy(path, os.path.join(folder, "moved.h5"))
            expected = read_all(os.path.join(folder, "moved.h5"), lookup)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = read_all(path, lookup)
            assert same(got, expected), "a non-finite box is not dropped like an out-of-frame one"
            assert any(issubclass(w.category, box_api.DroppedBoxesWarning)
                       and str(w.message).startswith(box_path) for w in caught)
            OUTCOMES["box: dropped with a warning"] += 1
            return
        check(folder, box_path, lookup, expected, "box")
