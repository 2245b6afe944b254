"""Bounding boxes of detection datasets: loading per chunk, splitting per time bin, filtering,
NMS and class mapping (``metavision_ml.data.box_processing``).

Boxes are :data:`~evstream.io.EventBbox` arrays (``docs/formats.md`` §2): ``t`` µs, top-left ``x, y``,
size ``w, h``, ``class_id``, ``track_id``, ``class_confidence``. A box file ``<stem>_bbox.npy``
sits next to its recording (``<stem>_td.dat``, ``<stem>.dat``, ``<stem>.h5``, ``<stem>.hdf5`` or
``<stem>.raw``); legacy files with ``ts`` / ``confidence`` fields are converted by name.

**Time convention (one rule end to end).** A box with timestamp ``t`` describes the scene at the
end of the bin ``(t0, t0 + delta_t]`` that contains it; a chunk starting at ``bst`` owns the boxes
with ``bst < t <= bst + duration``. :func:`load_box_events` and :func:`split_boxes` both use it, so
a box exactly on a chunk or bin boundary is counted once, in the bin that ends there. (The
original loads ``[bst, bst + duration)`` but splits ``(t0, t0 + dt]`` and loses boxes exactly on
chunk boundaries.) The rule is implemented once, in :mod:`evstream.timebins`.
"""

from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np

from evstream.datasets.box_filter import PaperBoxFilter
from evstream.datasets.labels import label_file_path, label_time_offset
from evstream.errors import ArgumentError, FileFormatError, MissingFileError
from evstream.io import EventBbox
from evstream.io.npy import convert_fields
from evstream.timebins import label_bins, label_slice
from evstream.utils.arrays import as_numpy

__all__ = ["load_boxes", "load_box_events", "nms_by_class", "nms", "clip_boxes", "rescale_boxes",
           "filter_boxes", "split_boxes", "create_class_lookup", "bboxes_to_box_vectors",
           "box_vectors_to_bboxes", "could_frame_contain_valid_gt", "filter_empty_tensor",
           "box_file_path", "load_label_map", "dropped_box_counts", "DroppedBoxesWarning"]

def box_file_path(path) -> str:
    """The label file of a recording path: ``<stem>_bbox.npy`` with its ending (``_td.dat.h5``,
    ``_td.h5``, ``_td.dat``, ``.dat``, ``.h5``, ``.hdf5`` or ``.raw``) replaced, or DSEC's
    ``object_detections/left/tracks.npy`` for ``events/left/events.h5``
    (:func:`evstream.datasets.labels.label_file_path`)."""
    return label_file_path(path)


#: Fields a box file must have (``ts`` may stand for ``t``), and the numpy kinds they accept.
BOX_FIELD_KINDS = {"t": "iu", "x": "iuf", "y": "iuf", "w": "iuf", "h": "iuf", "class_id": "iu"}
#: Largest class id a label map may use (ids are indices of the class lookup table).
MAX_CLASS_ID = (1 << 16) - 1


def _open_box_file(box_path: str) -> np.ndarray:
    """The box file's structured array, memory-mapped (nothing is kept between calls), with its
    fields checked (:data:`BOX_FIELD_KINDS`; other fields are ignored)."""
    if os.path.isdir(box_path):
        raise FileFormatError("is a directory, not a box file", box_path)
    if not os.path.isfile(box_path):
        raise MissingFileError("box file not found (it must sit next to the recording, named "
                               "<stem>_bbox.npy)", box_path)
    try:
        try:
            boxes = np.load(box_path, mmap_mode="r", allow_pickle=False)
        except ValueError:                       # e.g. an empty array cannot be mapped
            boxes = np.load(box_path, allow_pickle=False)
        data_offset = _npy_data_offset(box_path)
    except Exception as exc:    # noqa: BLE001  (np.load's header parser raises SyntaxError, ...)
        raise FileFormatError(f"not a readable .npy array ({type(exc).__name__}: {exc})",
                              box_path) from None
    size = os.path.getsize(box_path)
    if size != data_offset + boxes.nbytes:       # a damaged header that still parses
        raise FileFormatError(f"the .npy header describes {data_offset + boxes.nbytes} bytes "
                              f"({boxes.shape} {boxes.dtype}), the file has {size}", box_path)
    if boxes.dtype.names is None or boxes.ndim != 1:
        raise FileFormatError(f"expected a 1-D structured box array, got shape {boxes.shape} dtype "
                              f"{boxes.dtype}", box_path)
    if "t" not in boxes.dtype.names and "ts" not in boxes.dtype.names:
        raise FileFormatError(f"box array without a time field ('t' or legacy 'ts'): "
                              f"{boxes.dtype}", box_path)
    for name, kinds in BOX_FIELD_KINDS.items():
        stored = "ts" if name == "t" and "t" not in boxes.dtype.names else name
        if stored not in boxes.dtype.names:
            raise FileFormatError(f"box array without a {name!r} field: {boxes.dtype}", box_path)
        field_dtype = boxes.dtype[stored]
        if field_dtype.kind not in kinds or field_dtype.shape:
            raise FileFormatError(f"box field {stored!r} has dtype {field_dtype}, expected "
                                  f"{'an integer' if kinds == 'iu' else 'a number'}", box_path)
    return boxes


def _npy_data_offset(path: str) -> int:
    """Byte offset of the array data in a ``.npy`` file (after its header)."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else \
            np.lib.format.read_array_header_2_0
        read_header(f)
        return f.tell()


def load_box_events(metadata, batch_start_time, duration):
    """Boxes of ``metadata``'s box file with ``batch_start_time < t <= batch_start_time +
    duration``, as a new time-sorted EventBbox array (yours to modify).

    Only the rows of the window are read from a time-sorted file (binary search on the mapped
    file); an unsorted file is read whole and sorted (stable) first. DSEC's ``tracks.npy``
    times are moved onto the events' clock (:func:`evstream.datasets.labels.label_time_offset`).
    """
    box_path = box_file_path(metadata.path)
    boxes = _open_box_file(box_path)
    time_field = "t" if "t" in boxes.dtype.names else "ts"
    t = boxes[time_field]
    offset = label_time_offset(box_path, metadata.path, t)
    if offset:
        boxes = np.array(boxes, copy=True)
        boxes[time_field] -= offset
        t = boxes[time_field]
    if len(t) > 1 and not np.all(t[1:] >= t[:-1]):
        boxes = np.asarray(boxes)[np.argsort(t, kind="stable")]
        t = boxes[time_field]
    part = boxes[label_slice(t, batch_start_time, batch_start_time + duration)]
    if part.dtype == EventBbox:
        return np.array(part, copy=True)
    return convert_fields(part, EventBbox)


def split_boxes(box_events, batch_start_time=0, delta_t=None, num_tbins=None):
    """Splits boxes into ``num_tbins`` bins ``(t0, t0 + delta_t]``, ``t0 = batch_start_time +
    b * delta_t``, then keeps per bin the result of :func:`nms` scored by time (for overlapping
    boxes the latest wins). The time field is the dtype's first field. Returns a list of
    ``num_tbins`` arrays."""
    if delta_t is None or num_tbins is None:
        raise ArgumentError("split_boxes needs delta_t and num_tbins")
    delta_t, num_tbins = int(delta_t), int(num_tbins)
    if delta_t < 1 or num_tbins < 1:
        raise ArgumentError(f"split_boxes needs delta_t >= 1 and num_tbins >= 1, got {delta_t}, "
                            f"{num_tbins}")
    owner = label_bins(box_events[box_events.dtype.names[0]], batch_start_time,
                       delta_t * num_tbins, num_tbins)
    bins = []
    for b in range(num_tbins):
        sel = box_events[owner == b]
        if len(sel) > 1:
            sel = sel[nms(sel, sel[sel.dtype.names[0]], iou_thresh=0.5)]
        bins.append(sel)
    return bins


def _corners(box_events):
    x1 = box_events["x"].astype(np.float64)
    y1 = box_events["y"].astype(np.float64)
    return x1, y1, x1 + box_events["w"], y1 + box_events["h"]


def nms(box_events, scores, iou_thresh=0.5):
    """Greedy non-maximum suppression; returns the kept indices, sorted.

    Corners ``(x, y)`` and ``(x + w, y + h)``; areas and intersections count pixels inclusively
    (``(x2 - x1 + 1) * (y2 - y1 + 1)``). Boxes are taken by descending score (ties: lower index
    first); a box whose IoU with a kept box is ``> iou_thresh`` is dropped.
    """
    n = len(box_events)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = _corners(box_events)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_thresh]
    return np.sort(np.asarray(keep, dtype=np.int64))


def nms_by_class(box_events, scores, iou_thresh=0.5):
    """:func:`nms` within each ``class_id``; returns the kept indices, sorted. (The original
    ignores ``iou_thresh`` here and always uses 0.5.)"""
    scores = np.asarray(scores)
    keep = []
    for c in np.unique(box_events["class_id"]):
        idx = np.flatnonzero(box_events["class_id"] == c)
        keep.append(idx[nms(box_events[idx], scores[idx], iou_thresh=iou_thresh)])
    if not keep:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(keep))


def clip_boxes(box_events, width_orig, height_orig, *, path=None):
    """Clips boxes to the frame ``[0, width_orig] x [0, height_orig]`` (in place: x, y, w, h
    recomputed from the clipped corners) and returns those with ``w > 2`` and ``h > 2``.

    The others cannot be drawn or trained on and are dropped: boxes with a NaN or infinite
    coordinate, and boxes that are outside the frame, of negative size or at most 2 px wide or
    high once clipped. With ``path`` (the box file), the drops are counted in
    :func:`dropped_box_counts` and the first drop of each file in a process is reported with a
    :class:`DroppedBoxesWarning` naming the file.
    """
    x1, y1, x2, y2 = _corners(box_events)
    finite = np.isfinite(x1) & np.isfinite(y1) & np.isfinite(x2) & np.isfinite(y2)
    x1c, x2c = np.clip(x1, 0, width_orig), np.clip(x2, 0, width_orig)
    y1c, y2c = np.clip(y1, 0, height_orig), np.clip(y2, 0, height_orig)
    box_events["x"], box_events["y"] = x1c, y1c
    box_events["w"], box_events["h"] = x2c - x1c, y2c - y1c
    keep = finite & (box_events["w"] > 2) & (box_events["h"] > 2)
    if path is not None and not keep.all():
        _count_dropped(os.fspath(path), int(np.count_nonzero(~finite)),
                       int(np.count_nonzero(finite & ~keep)), len(keep))
    return box_events[keep]


class DroppedBoxesWarning(UserWarning):
    """Boxes of a box file were dropped because they cannot be drawn or trained on."""


#: box file -> [non-finite boxes dropped, degenerate / out-of-frame boxes dropped] (this process)
_DROPPED: dict[str, list[int]] = {}


def _count_dropped(path: str, non_finite: int, degenerate: int, total: int) -> None:
    counts = _DROPPED.get(path)
    if counts is None:
        counts = _DROPPED[path] = [0, 0]
        warnings.warn(f"{path}: {non_finite + degenerate} of {total} boxes dropped ({non_finite} "
                      f"with a NaN or infinite coordinate, {degenerate} outside the frame, of "
                      f"negative size or at most 2 px once clipped); later drops in this file are "
                      f"counted in box_processing.dropped_box_counts()", DroppedBoxesWarning,
                      stacklevel=3)
    counts[0] += non_finite
    counts[1] += degenerate


def dropped_box_counts() -> dict[str, dict[str, int]]:
    """Boxes dropped by :func:`clip_boxes` in this process (each DataLoader worker counts its
    own): ``{box file: {"non_finite": n, "degenerate": n}}``."""
    return {p: {"non_finite": c[0], "degenerate": c[1]} for p, c in _DROPPED.items()}


def rescale_boxes(box_events, width_orig, height_orig, width_dst, height_dst):
    """Scales boxes in place from a ``width_orig x height_orig`` frame to ``width_dst x
    height_dst`` (x, w by ``width_dst / width_orig``; y, h by ``height_dst / height_orig``);
    returns them."""
    sx, sy = width_dst / width_orig, height_dst / height_orig
    box_events["x"] *= sx
    box_events["w"] *= sx
    box_events["y"] *= sy
    box_events["h"] *= sy
    return box_events


def filter_boxes(box_events, class_lookup, idx_to_filter=(), ignore_filtered=False, *,
                 path=None):
    """Maps ``class_id`` through ``class_lookup`` and keeps the boxes of wanted classes (> 0).

    Boxes at positions ``idx_to_filter`` are dropped, or, with ``ignore_filtered``, kept with
    class -1 (stored as 4294967295 in the unsigned field: "ignore"). Returns a new array.
    ``path``: the box file, named by the error of a class id outside the lookup.
    """
    class_lookup = np.asarray(class_lookup)
    ids = box_events["class_id"].astype(np.int64)
    if ids.size and ids.max() >= len(class_lookup):
        raise ArgumentError(f"class id {int(ids.max())} outside the class lookup (size "
                            f"{len(class_lookup)}): is the label map complete?", path)
    classes = class_lookup[ids].astype(np.int64)
    if np.any(classes == 0):
        raise ArgumentError("the class lookup maps a class to 0, reserved for the background")
    keep = classes > 0
    idx = np.asarray(idx_to_filter, dtype=np.int64).reshape(-1)
    if idx.size:
        if ignore_filtered:
            classes[idx] = -1
        else:
            keep[idx] = False
    out = box_events[keep].copy()
    out["class_id"] = classes[keep].astype(np.uint32)
    return out


def create_class_lookup(labelmap_path, wanted_keys=[]):
    """Class lookup table from a ``label_map_dictionary.json`` (``{"id": "name"}``).

    Returns an int64 array ``lookup`` of size ``max id + 1`` with ``lookup[id] = 1 + position
    of the name in wanted_keys`` (ids 1..K; 0 is the background) and -1 for unwanted classes.
    Without ``wanted_keys`` every name except ``"empty"`` is wanted, in file order. Example:
    ``{"0": "pedestrian", "1": "two wheeler", "2": "car", "3": "truck"}`` with
    ``["car", "pedestrian"]`` gives ``[2, -1, 1, -1]``.
    """
    labelmap_path = os.fspath(labelmap_path)
    id_to_name = load_label_map(labelmap_path)
    names = list(id_to_name.values())
    wanted_keys = list(wanted_keys)
    if wanted_keys:
        if not any(k != "empty" for k in wanted_keys):
            raise ArgumentError("wanted_keys must name at least one class other than 'empty'",
                                labelmap_path)
        unknown = [k for k in wanted_keys if k not in names]
        if unknown:
            raise ArgumentError(f"wanted classes {unknown} are not in the label map {names}",
                                labelmap_path)
    else:
        wanted_keys = [n for n in names if n != "empty"]
    lookup = np.full(max(id_to_name) + 1 if id_to_name else 0, -1, dtype=np.int64)
    for class_id, name in id_to_name.items():
        if name in wanted_keys:
            lookup[class_id] = 1 + wanted_keys.index(name)
    return lookup


def load_label_map(labelmap_path) -> dict[int, str]:
    """A ``label_map_dictionary.json`` as ``{class id: name}``, in file order.

    Keys must be class ids written as decimal digits (``"0"`` .. ``"65535"``,
    :data:`MAX_CLASS_ID`: they index the class lookup table, so a negative id would alias another
    class and a huge one would allocate a huge table); values non-empty strings. Anything else is
    a :class:`~evstream.errors.FileFormatError` naming the file.
    """
    labelmap_path = os.fspath(labelmap_path)
    if os.path.isdir(labelmap_path):
        raise FileFormatError("is a directory, not a label map", labelmap_path)
    try:
        with open(labelmap_path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise MissingFileError("label map not found", labelmap_path) from None
    except UnicodeDecodeError:
        raise FileFormatError("not a JSON label map (not UTF-8 text)", labelmap_path) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FileFormatError(f"not a JSON label map ({exc})", labelmap_path) from None
    except OSError as exc:
        raise FileFormatError(f"cannot read the label map: {exc}", labelmap_path) from None
    if not isinstance(raw, dict):
        raise FileFormatError(f"a label map is a JSON object {{\"id\": \"name\"}}, got "
                              f"{type(raw).__name__}", labelmap_path)
    id_to_name = {}
    for key, name in raw.items():
        if not (key.isascii() and key.isdigit()) or int(key) > MAX_CLASS_ID:
            raise FileFormatError(f"label map key {key!r:.40}: class ids are integers in [0, "
                                  f"{MAX_CLASS_ID}] written as decimal strings", labelmap_path)
        if not isinstance(name, str) or not name.strip():
            raise FileFormatError(f"label map name of class {key} must be a non-empty string, got "
                                  f"{name!r:.40}", labelmap_path)
        if int(key) in id_to_name:
            raise FileFormatError(f"class id {int(key)} appears twice ({key!r})", labelmap_path)
        id_to_name[int(key)] = name
    return id_to_name


def bboxes_to_box_vectors(bbox):
    """EventBbox array -> float32 ``N x 6`` ``(x1, y1, x2, y2, class_id, track_id)``. A list of
    arrays gives a list of matrices."""
    if isinstance(bbox, (list, tuple)):
        return [bboxes_to_box_vectors(b) for b in bbox]
    out = np.zeros((len(bbox), 6), dtype=np.float32)
    out[:, 0] = bbox["x"]
    out[:, 1] = bbox["y"]
    out[:, 2] = bbox["x"] + bbox["w"]
    out[:, 3] = bbox["y"] + bbox["h"]
    out[:, 4] = bbox["class_id"]
    out[:, 5] = bbox["track_id"]
    return out


def box_vectors_to_bboxes(boxes, labels, scores=None, track_ids=None, ts=0):
    """``N x 4`` corner boxes ``(x1, y1, x2, y2)`` (numpy or torch) + class ids -> EventBbox
    with ``w = x2 - x1``, ``h = y2 - y1``; scores default 0, track ids ``arange(N)``."""
    boxes = as_numpy(boxes).reshape(-1, 4)
    n = len(boxes)
    out = np.zeros(n, dtype=EventBbox)
    out["t"] = ts
    out["x"], out["y"] = boxes[:, 0], boxes[:, 1]
    out["w"], out["h"] = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    out["class_id"] = as_numpy(labels).reshape(-1)
    out["class_confidence"] = 0 if scores is None else as_numpy(scores).reshape(-1)
    out["track_id"] = np.arange(n) if track_ids is None else as_numpy(track_ids).reshape(-1)
    return out


def filter_empty_tensor(array, box_events, area_box_filter=0.1, shift=0, time_per_bin=10000,
                        batch_start_time=0, last_time_to_filter=None):
    """Positions of boxes that sit on (nearly) no events.

    For each box, ``ts = t - batch_start_time``; boxes with ``ts > last_time_to_filter`` are
    kept unexamined. The box (corners as int16, shifted right by ``shift`` into the tensor's
    resolution) is looked at in the bin that owns it, ``b = ceil(ts / time_per_bin) - 1`` (the
    bin ``(b·dt, (b+1)·dt]``), and the bins of the 100 ms before. It is filtered when its area
    is 0 or fewer than ``area_box_filter`` of its pixels hold a non-zero value in any of those
    bins and channels. ``array`` is ``[T, C, H, W]`` (numpy or torch).
    """
    array = as_numpy(array)
    n_tbins = array.shape[0]
    tpb = int(time_per_bin)
    to_filter = []
    for i, box in enumerate(box_events):
        ts = int(box["t"]) - int(batch_start_time)
        if last_time_to_filter is not None and ts > last_time_to_filter:
            continue
        x0 = int(np.int16(box["x"])) >> shift
        y0 = int(np.int16(box["y"])) >> shift
        x1 = int(np.int16(box["x"] + box["w"])) >> shift
        y1 = int(np.int16(box["y"] + box["h"])) >> shift
        x0, y0 = max(x0, 0), max(y0, 0)
        area = max(x1 - x0, 0) * max(y1 - y0, 0)
        if area == 0:
            to_filter.append(i)
            continue
        tmax = min(max(int(label_bins(ts, 0, tpb)) + 1, 1), n_tbins)
        min_t = max(0, tmax - int(100000 / tpb))
        window = array[min_t:tmax, :, y0:y1, x0:x1]
        active = np.count_nonzero(np.any(window != 0, axis=(0, 1)))
        if active < area_box_filter * area:
            to_filter.append(i)
    return np.asarray(to_filter, dtype=np.int64)


def could_frame_contain_valid_gt(batch_start_time, duration, labelling_delta_t, num_tbins):
    """Which bins of a chunk can hold a label when labels come every ``labelling_delta_t`` µs.

    The expected label times are the multiples of ``labelling_delta_t`` in ``(batch_start_time,
    batch_start_time + duration]``; each marks the bin ``(t0, t0 + dt]`` it falls in. Returns a
    bool array of length ``num_tbins``.
    """
    if not (duration > 0 and labelling_delta_t > 0 and num_tbins > 0 and batch_start_time >= 0):
        raise ArgumentError(f"could_frame_contain_valid_gt needs duration, labelling_delta_t, "
                            f"num_tbins > 0 and batch_start_time >= 0, got {duration}, "
                            f"{labelling_delta_t}, {num_tbins}, {batch_start_time}")
    first = (batch_start_time // labelling_delta_t + 1) * labelling_delta_t
    label_ts = np.arange(first, batch_start_time + duration + 1, labelling_delta_t)
    owner = label_bins(label_ts, batch_start_time, duration, num_tbins)
    out = np.zeros(num_tbins, dtype=bool)
    out[owner[(owner >= 0) & (owner < num_tbins)]] = True
    return out


def load_boxes(metadata, batch_start_time, duration, tensor, **kwargs):
    """A ready-made label loader for detection (pass it with ``functools.partial``).

    kwargs: ``class_lookup`` (required, see :func:`create_class_lookup`);
    ``min_box_diag_network`` (default 0: boxes smaller than this in the tensor's resolution are
    dropped); ``box_filter`` (default None: a
    :class:`~evstream.datasets.box_filter.PaperBoxFilter`, e.g. ``GEN1_FILTER``, applied to the
    loaded boxes in sensor coordinates first, the same filter the evaluation applies).
    ``labelling_delta_t`` and ``min_box_diag`` are accepted and unused, as in the original.

    Steps: boxes of ``(bst, bst + duration]`` (kept by ``box_filter``); ``frame_is_labeled[b]`` = bin ``b`` has a box
    (any class, after the per-bin NMS); boxes clipped to the sensor; boxes with ``t <= 500 ms``
    that sit on no events dropped (:func:`filter_empty_tensor`); classes mapped
    (:func:`filter_boxes`); per bin, boxes rescaled to the tensor size and those with
    ``w² + h² < m²``, ``w < m/3``, ``h < m/3`` or ``w > 0.8·W`` dropped (``m =
    min_box_diag_network``).

    Returns ``(list of T EventBbox arrays with class ids 1..K, bool array of length T)``.
    """
    class_lookup = kwargs["class_lookup"]
    min_box_diag_network = kwargs.get("min_box_diag_network", 0)
    height_orig, width_orig = metadata.get_original_size()
    num_tbins, _, height_dst, width_dst = tensor.shape
    time_per_bin = duration // num_tbins
    box_path = box_file_path(metadata.path)
    boxes = load_box_events(metadata, batch_start_time, duration)
    box_filter = kwargs.get("box_filter")
    if box_filter is not None:
        if not isinstance(box_filter, PaperBoxFilter):
            raise ArgumentError(f"box_filter must be a PaperBoxFilter, not {type(box_filter)}")
        boxes = box_filter(boxes)
    split = split_boxes(boxes, batch_start_time, time_per_bin, num_tbins)
    frame_is_labeled = np.array([len(b) > 0 for b in split], dtype=bool)
    shift = int(round(math.log2(width_orig / width_dst)))
    boxes = clip_boxes(boxes, width_orig, height_orig, path=box_path)
    idx = filter_empty_tensor(tensor, boxes, area_box_filter=0.1, shift=shift,
                              time_per_bin=time_per_bin,
                              last_time_to_filter=500000 - batch_start_time,
                              batch_start_time=batch_start_time)
    boxes = filter_boxes(boxes, class_lookup, idx, ignore_filtered=False, path=box_path)
    out = []
    m = float(min_box_diag_network)
    for b in split_boxes(boxes, batch_start_time, time_per_bin, num_tbins):
        b = rescale_boxes(b, width_orig, height_orig, width_dst, height_dst)
        w, h = b["w"].astype(np.float64), b["h"].astype(np.float64)
        keep = (w ** 2 + h ** 2 >= m ** 2) & (w >= m / 3) & (h >= m / 3) & (w <= 0.8 * width_dst)
        out.append(b[keep])
    return out, frame_is_labeled
