"""Builders of the small datasets the sequential-loader tests play (everything is made in the
test's temporary directory; nothing is read from outside except ../shared/samples)."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from evstream.io import DatWriter, EventBbox, EventCD, RawWriter

#: The tutorial's dataset: 1280x720 sensor stored at 360x640 (k = 1), histo, delta_t 50 ms.
SENSOR = (720, 1280)
STORED = (360, 640)
DELTA_T = 50_000

#: dtype of legacy box files (older automotive datasets): ts / confidence names.
LEGACY_BBOX = np.dtype([("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                        ("class_id", "u1"), ("confidence", "<f4"), ("track_id", "<u4")])


def row_marker(row: int) -> float:
    """The value stored at pixel (1, 1) of channel 0 of tensor row ``row`` (identifies rows)."""
    return (row + 1) / 256.0


def tensor_rows(n_rows: int, shape=(2,) + STORED, active=(slice(50, 300), slice(50, 600))):
    """float32 rows in [0, 1]: row marker at (c0, 1, 1), a constant active block in both channels
    (so boxes over it are not 'empty'), zeros elsewhere."""
    rows = np.zeros((n_rows,) + tuple(shape), np.float32)
    rows[:, :, active[0], active[1]] = 0.5
    for r in range(n_rows):
        rows[r, 0, 1, 1] = row_marker(r)
    return rows


def write_tensor_file(path, rows, delta_t=DELTA_T, sensor=SENSOR, name="histo",
                      store_as_uint8=False, mode="delta_t", extra_attrs=None, legacy_shift=None):
    """A tensor file in the original writer's layout (formats.md §9), written with h5py."""
    rows = np.asarray(rows)
    with h5py.File(path, "w") as f:
        data = rows
        if store_as_uint8:
            data = np.round(rows.astype(np.float32) * 255).astype(np.uint8)
        ds = f.create_dataset("data", data=data, maxshape=(None,) + data.shape[1:],
                              chunks=(1,) + data.shape[1:], compression="gzip")
        ds.attrs["events_to_tensor"] = np.bytes_(name.encode())
        ds.attrs["delta_t"] = np.uint32(delta_t)
        if legacy_shift is None:
            ds.attrs["event_input_height"] = sensor[0]
            ds.attrs["event_input_width"] = sensor[1]
        else:
            ds.attrs["shift"] = legacy_shift
        ds.attrs["shape"] = data.shape[1:]
        ds.attrs["mode"] = mode
        ds.attrs["n_events"] = 0
        ds.attrs["max_incr_per_pixel"] = 5.0
        if store_as_uint8:
            ds.attrs["store_as_uint8"] = True
        for k, v in (extra_attrs or {}).items():
            ds.attrs[k] = v
    return os.fspath(path)


def make_boxes(times, x=300.0, y=250.0, w=200.0, h=150.0, class_id=2, track_start=0, dx=0.0):
    """EventBbox boxes at ``times`` (one per time), shifted ``dx`` px right for each so they do
    not overlap (no NMS suppression) when dx >= w."""
    times = np.asarray(times, dtype=np.int64)
    boxes = np.zeros(len(times), EventBbox)
    boxes["t"] = times
    boxes["x"] = x + dx * np.arange(len(times))
    boxes["y"] = y
    boxes["w"], boxes["h"] = w, h
    boxes["class_id"] = class_id
    boxes["track_id"] = track_start + np.arange(len(times))
    boxes["class_confidence"] = 0.9
    return boxes


def save_boxes(path, boxes, legacy=False):
    if legacy:
        out = np.zeros(len(boxes), LEGACY_BBOX)
        out["ts"], out["confidence"] = boxes["t"], boxes["class_confidence"]
        for k in ("x", "y", "w", "h", "class_id", "track_id"):
            out[k] = boxes[k]
        boxes = out
    np.save(path, boxes)
    return os.fspath(path)


def write_label_map(path, mapping=None):
    mapping = mapping or {"0": "pedestrian", "1": "two wheeler", "2": "car", "3": "truck",
                          "4": "bus", "5": "empty"}
    with open(path, "w") as f:
        json.dump(mapping, f)
    return os.fspath(path)


def synthetic_events(duration_us, rate_per_ms=20, height=240, width=320, seed=0, first_t=0):
    """Sorted EventCD events over [first_t, duration_us)."""
    rng = np.random.default_rng(seed)
    n = int((duration_us - first_t) / 1000 * rate_per_ms)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(first_t, duration_us, n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def write_dat(path, events, height=240, width=320):
    with DatWriter(os.fspath(path), height=height, width=width) as w:
        w.write(events)
    return os.fspath(path)


def write_raw(path, events, height=240, width=320, fmt="evt3"):
    w = RawWriter(os.fspath(path), height, width, fmt)
    try:
        w.write(events)
    finally:
        w.close()
    return os.fspath(path)
