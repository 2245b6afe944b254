"""RVT's label rules: box filters, label frames, and the ``labels.npz`` contents.

All functions take a 1-D structured box array with at least the fields ``t`` (integer µs),
``x, y, w, h`` (float, top-left corner and size, pixels) and ``class_id``; every other field
passes through unchanged. Filters run in RVT's order (:func:`filter_boxes`):

1. gen4 only: keep ``class_id <= 2`` (ids are not remapped);
2. crop to the field of view with the right/bottom edges at ``W - 1`` / ``H - 1`` (float32), drop
   boxes that become flat;
3. size filter on the cropped sizes: gen1 "psee" ``w^2 + h^2 >= 30^2 and w >= 10 and h >= 10``,
   gen4 "conservative" ``w >= 5 and h >= 5`` (every comparison keeps equality);
4. train split only: keep ``w <= floor(9 W / 10)``.

Label frames (:func:`label_frames`): the first unique label time ``>= 100 ms``, then every later
unique time within 2 ms of a whole number ``c >= 1`` of base periods after the last accepted
frame. Inputs on which RVT's script stops raise :class:`~evstream.errors.RvtRuleError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from evstream.errors import FileFormatError, MissingFileError, RvtRuleError
from evstream.rvt.config import (ALIGN_T_US, JITTER_TOLERANCE_US, MIN_FRAME_GAP_US, RvtDataset)

REQUIRED_FIELDS = ("t", "x", "y", "w", "h", "class_id")


def load_box_file(path: str | os.PathLike) -> np.ndarray:
    """A ``_bbox.npy`` box array, checked: 1-D structured with the fields RVT needs, sorted by t.

    RVT reads the field ``t`` (legacy files with ``ts`` fail there, and here) and takes each label
    frame as one contiguous slice, so unsorted rows give it wrong frames; here they raise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError("no such box file", path)
    try:
        boxes = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise FileFormatError(f"not a readable .npy box array ({exc})", path) from None
    check_boxes(boxes, path)
    return boxes


def check_boxes(boxes: np.ndarray, path: str | None = None) -> None:
    """Raise unless ``boxes`` is a 1-D structured array with RVT's fields, sorted by ``t``."""
    names = getattr(getattr(boxes, "dtype", None), "names", None)
    if names is None or boxes.ndim != 1:
        raise FileFormatError("a box file must hold a 1-D structured array", path)
    missing = [f for f in REQUIRED_FIELDS if f not in names]
    if missing:
        hint = " (legacy 'ts' time field: RVT needs 't')" if "ts" in names and "t" in missing else ""
        raise FileFormatError(f"box array lacks the field(s) {missing}{hint}", path)
    if len(boxes) > 1 and np.any(np.diff(boxes["t"].astype(np.int64)) < 0):
        raise FileFormatError("box rows are not sorted by t (RVT takes each label frame as one "
                              "contiguous slice)", path)


def crop_to_frame(boxes: np.ndarray, height: int, width: int, path: str | None = None) -> np.ndarray:
    """RVT's field-of-view crop (float32): ``x0 = clip(x, 0, W-1)``, ``x1 = clip(x + w, 0, W-1)``
    (same for y), the box becomes ``(x0, y0, x1 - x0, y1 - y0)``; flat boxes are dropped."""
    out = boxes.copy()
    f32 = np.float32
    x = boxes["x"].astype(f32)
    y = boxes["y"].astype(f32)
    x1 = np.clip(x + boxes["w"].astype(f32), f32(0), f32(width - 1))
    y1 = np.clip(y + boxes["h"].astype(f32), f32(0), f32(height - 1))
    x0 = np.clip(x, f32(0), f32(width - 1))
    y0 = np.clip(y, f32(0), f32(height - 1))
    w, h = x1 - x0, y1 - y0
    if np.any(w < 0) or np.any(h < 0):
        raise RvtRuleError("a box has a negative width or height (RVT asserts w, h >= 0)", path)
    out["x"], out["y"], out["w"], out["h"] = x0, y0, w, h
    return out[(w > 0) & (h > 0)]


def filter_boxes(boxes: np.ndarray, dataset: RvtDataset, train_split: bool,
                 apply_faulty_filter: bool = True, psee_filter: bool | None = None,
                 path: str | None = None) -> np.ndarray:
    """RVT's four filters in order (module docstring); ``psee_filter`` overrides the preset."""
    if dataset.max_class_id is not None:
        boxes = boxes[boxes["class_id"] <= dataset.max_class_id]
    boxes = crop_to_frame(boxes, dataset.height, dataset.width, path)
    w, h = boxes["w"], boxes["h"]
    if dataset.psee_filter if psee_filter is None else psee_filter:
        diag, side = dataset.psee_limits
        keep = (w ** 2 + h ** 2 >= diag ** 2) & (w >= side) & (h >= side)
    else:
        keep = (w >= 5) & (h >= 5)
    boxes = boxes[keep]
    if train_split and apply_faulty_filter:
        boxes = boxes[boxes["w"] <= dataset.faulty_max_width]
    return boxes


def base_period(times: np.ndarray, dataset: RvtDataset, path: str | None = None) -> int:
    """Label period B in µs: gen1 250 000; gen4 ``trunc(6 m)`` at 60 Hz or ``trunc(3 m)`` at
    30 Hz, with ``m`` the median gap of the sorted unique label times ``times``."""
    if dataset.base_period_us is not None:
        return dataset.base_period_us
    if len(times) < 2:
        raise RvtRuleError("fewer than 2 label times: no label rate to measure (RVT fails)", path)
    m = float(np.median(np.diff(times.astype(np.int64)).astype(np.float64)))
    hz = round(1e6 / m)
    if hz not in (30, 60):
        raise RvtRuleError(f"label rate rounds to {hz} Hz (median gap {m} µs); RVT accepts only "
                           f"30 or 60 Hz", path)
    return int(6 * m) if hz == 60 else int(3 * m)


def label_frames(times: np.ndarray, period: int, path: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, counts)``: the label-frame times (int64, increasing) and, for each gap between
    consecutive frames, ``c_i = round(d / B)`` (int64, one fewer than the frames).

    ``times`` are the sorted unique label times. Labels before 100 ms are never frames; a time
    1-2000 µs after an accepted frame, or two frames <= 98 ms apart, raise as RVT's script does.
    """
    times = np.asarray(times, dtype=np.int64)
    late = np.flatnonzero(times >= ALIGN_T_US)
    if late.size == 0:
        raise RvtRuleError(f"no label at or after {ALIGN_T_US} µs (RVT fails: index error)", path)
    frames = [int(times[late[0]])]
    counts = []
    for u in times[late[0] + 1:]:
        d = int(u) - frames[-1]
        c = round(d / period)
        if abs(d - c * period) <= JITTER_TOLERANCE_US:
            if c <= 0:
                raise RvtRuleError(f"label time {int(u)} µs is {d} µs after the label frame at "
                                   f"{frames[-1]} µs (RVT asserts c > 0)", path)
            frames.append(int(u))
            counts.append(c)
    frames_a = np.asarray(frames, dtype=np.int64)
    if len(frames_a) >= 2 and np.any(np.diff(frames_a) <= MIN_FRAME_GAP_US):
        raise RvtRuleError(f"two label frames are {MIN_FRAME_GAP_US} µs apart or less (RVT "
                           f"asserts every gap > {MIN_FRAME_GAP_US} µs)", path)
    return frames_a, np.asarray(counts, dtype=np.int64)


def packed_dtype(dtype: np.dtype) -> np.dtype:
    """``dtype`` with the same field names, order and formats but no padding (what RVT's
    ``labels.npz`` stores: itemsize 36 for the 40-byte box dtype)."""
    return np.dtype([(name, dtype.fields[name][0]) for name in dtype.names])


@dataclass
class FrameLabels:
    """The ``labels_v2`` contents of one sequence.

    Attributes:
        frames: label-frame times, int64 (M,) (``labels_v2/timestamps_us.npy``).
        counts: ``c_i`` of each gap between frames, int64 (M - 1,).
        labels: the frames' boxes concatenated in frame order, packed dtype (``labels.npz`` member
            ``labels``).
        label_index: start row of each frame in ``labels``, int64 (M,) (member
            ``objframe_idx_2_label_idx``).
    """

    frames: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    label_index: np.ndarray

    def boxes_of_frame(self, i: int) -> np.ndarray:
        """The boxes of label frame ``i`` (rows of :attr:`labels`)."""
        start = int(self.label_index[i])
        stop = int(self.label_index[i + 1]) if i + 1 < len(self.label_index) else len(self.labels)
        return self.labels[start:stop]


def frame_labels(boxes: np.ndarray, dataset: RvtDataset, train_split: bool,
                 path: str | None = None, **filter_options) -> FrameLabels | None:
    """Filtered boxes grouped into label frames; None when no box survives the filters (RVT then
    deletes the sequence's output folder)."""
    check_boxes(boxes, path)
    kept = filter_boxes(boxes, dataset, train_split, path=path, **filter_options)
    if len(kept) == 0:
        return None
    t = kept["t"].astype(np.int64)
    unique = np.unique(t)
    frames, counts = label_frames(unique, base_period(unique, dataset, path), path)
    starts = np.searchsorted(t, frames, side="left")
    stops = np.searchsorted(t, frames, side="right")
    sizes = stops - starts
    label_index = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
    labels = kept[rows].astype(packed_dtype(kept.dtype))
    return FrameLabels(frames, counts, labels, label_index)
