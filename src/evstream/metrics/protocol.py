"""The field's evaluation protocol for event-camera detectors.

**Prophesee automotive toolbox** (:func:`evaluate_detection`), per recording:

1. both the ground truth and the detections go through the same box filter
   (:class:`~evstream.datasets.box_filter.PaperBoxFilter`: ``t > skip_ts``, minimum diagonal and
   side, float32 comparisons);
2. both arrays are ordered by ``t`` (stable; the toolbox requires sorted input and gets the same
   order);
3. each distinct ground-truth timestamp ``u`` becomes one COCO image holding the ground truth
   with ``t == u`` and the detections with ``u - time_tol <= t <= u + time_tol`` (``time_tol``
   50,000 µs); times without ground truth are not evaluated, so detections far from every label
   are ignored and a detection near two label times counts in both images;
4. the images of all recordings, in recording order then time order, are scored together by
   COCO (:func:`~evstream.metrics.coco.coco_metrics_from_frames`): image size ``height x width``
   (the camera's, or the size the boxes are in), categories ``classes`` with id ``class_id + 1``.

**RVT** (:func:`evaluate_rvt`; its ``PropheseeEvaluator``) is that protocol with fixed
settings: the filter is always on (Gen1 30 / 10; Gen4 60 / 20, halved to 30 / 10 with
``downsample_by_2`` because the boxes are then in 640x360 coordinates; ``skip_ts`` 500,000),
``time_tol`` 50,000, classes Gen1
``car, pedestrian`` and Gen4 ``pedestrian, two-wheeler, car``, image size = the padded model
input. RVT reports ``AP, AP_50, AP_75, AP_S, AP_M, AP_L`` (COCO stats 0-5) and 0 for everything
when there are no detections. RVT's loader stores label times as float32 and casts them back to
int64; pass arrays so cast to reproduce that to the microsecond.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import numpy as np

from evstream.datasets.box_filter import GEN1_FILTER, GEN4_FILTER, PaperBoxFilter
from evstream.datasets.labels import read_label_file
from evstream.errors import ArgumentError, EventArrayError, MissingFileError
from evstream.metrics.coco import DEFAULT_BACKEND, coco_metrics_from_frames

#: Detections within this many µs of a ground-truth time belong to its image.
DEFAULT_TIME_TOL = 50_000
#: RVT's evaluation class names (category id = class_id + 1).
RVT_CLASSES = {"gen1": ("car", "pedestrian"), "gen4": ("pedestrian", "two-wheeler", "car")}
#: RVT's metric names, COCO stats 0-5.
RVT_METRICS = ("AP", "AP_50", "AP_75", "AP_S", "AP_M", "AP_L")


def _sorted_by_time(boxes: np.ndarray, what: str) -> np.ndarray:
    names = getattr(getattr(boxes, "dtype", None), "names", None) or ()
    if "t" not in names:
        raise EventArrayError(f"{what} boxes need a 't' field, got "
                              f"{getattr(boxes, 'dtype', type(boxes))}")
    t = boxes["t"]
    if len(t) > 1 and not np.all(t[1:] >= t[:-1]):
        return boxes[np.argsort(t, kind="stable")]
    return boxes


def match_boxes_by_time(gt_boxes: np.ndarray, dt_boxes: np.ndarray,
                        time_tol: int = DEFAULT_TIME_TOL) -> tuple[list[np.ndarray],
                                                                   list[np.ndarray]]:
    """One recording's frames: for each distinct ground-truth time ``u`` (ascending), the
    ground truth at ``t == u`` and the detections with ``u - time_tol <= t <= u + time_tol``.
    Returns ``(gt_frames, dt_frames)``, two lists of equal length."""
    gt_boxes = _sorted_by_time(gt_boxes, "ground-truth")
    dt_boxes = _sorted_by_time(dt_boxes, "detection")
    time_tol = int(time_tol)
    if time_tol < 0:
        raise ArgumentError(f"time_tol must be >= 0 µs, got {time_tol}")
    gt_t, dt_t = gt_boxes["t"].astype(np.int64), dt_boxes["t"].astype(np.int64)
    times, starts = np.unique(gt_t, return_index=True)
    stops = np.append(starts[1:], len(gt_t))
    lo = np.searchsorted(dt_t, times - time_tol, side="left")
    hi = np.searchsorted(dt_t, times + time_tol, side="right")
    gt_frames = [gt_boxes[a:b] for a, b in zip(starts, stops)]
    dt_frames = [dt_boxes[a:b] for a, b in zip(lo, hi)]
    return gt_frames, dt_frames


def evaluate_detection(gt_boxes_list: Sequence[np.ndarray], dt_boxes_list: Sequence[np.ndarray],
                       classes: Sequence[str] = ("car", "pedestrian"), height: int = 240,
                       width: int = 304, time_tol: int = DEFAULT_TIME_TOL,
                       box_filter: PaperBoxFilter | None = None,
                       backend: str = DEFAULT_BACKEND) -> dict[str, float]:
    """COCO metrics of per-recording ground truth and detections, by the toolbox's protocol
    (module docstring). ``gt_boxes_list[i]`` and ``dt_boxes_list[i]`` are recording ``i``'s
    box arrays (EventBbox-like; detections need ``class_confidence``). ``box_filter``: applied to
    both (None: no filter, as the toolbox's ``evaluate_detection`` itself; its evaluation script
    filters with Gen1 30 / 10 or 1Mpx 60 / 20 first: pass ``GEN1_FILTER`` / ``GEN4_FILTER``).

    Returns ``{"AP", "AP_50", "AP_75", "AP_S", "AP_M", "AP_L", "AR_1", "AR_10", "AR_100",
    "AR_S", "AR_M", "AR_L"}`` plus ``num_images``, ``num_gt``, ``num_detections`` (after the
    filter; detections counted once per recording)."""
    if len(gt_boxes_list) != len(dt_boxes_list):
        raise ArgumentError(f"{len(gt_boxes_list)} ground-truth recordings for "
                            f"{len(dt_boxes_list)} detection recordings")
    gt_frames, dt_frames = [], []
    num_gt = num_dt = 0
    for gt, dt in zip(gt_boxes_list, dt_boxes_list):
        if box_filter is not None:
            gt, dt = box_filter(gt), box_filter(dt)
        num_gt, num_dt = num_gt + len(gt), num_dt + len(dt)
        g, d = match_boxes_by_time(gt, dt, time_tol)
        gt_frames += g
        dt_frames += d
    metrics = coco_metrics_from_frames(gt_frames, dt_frames, height, width, classes, backend)
    metrics.update(num_images=len(gt_frames), num_gt=num_gt, num_detections=num_dt)
    return metrics


def rvt_box_filter(dataset: str, downsample_by_2: bool = False) -> PaperBoxFilter:
    """RVT's evaluation filter: Gen1 30 / 10, Gen4 60 / 20 (30 / 10 when ``downsample_by_2``)."""
    if dataset not in RVT_CLASSES:
        raise ArgumentError(f"dataset must be one of {sorted(RVT_CLASSES)}, not {dataset!r}")
    box_filter = GEN1_FILTER if dataset == "gen1" else GEN4_FILTER
    return box_filter.halved() if dataset == "gen4" and downsample_by_2 else box_filter


def evaluate_rvt(gt_boxes_list: Sequence[np.ndarray], dt_boxes_list: Sequence[np.ndarray],
                 dataset: str, height: int, width: int, downsample_by_2: bool = False,
                 backend: str = DEFAULT_BACKEND) -> dict[str, float]:
    """RVT's ``PropheseeEvaluator`` result for buffered per-recording arrays (module
    docstring): ``{"AP", "AP_50", "AP_75", "AP_S", "AP_M", "AP_L"}``. ``height``/``width``: the
    padded model input (they only enter the COCO image records)."""
    metrics = evaluate_detection(gt_boxes_list, dt_boxes_list, RVT_CLASSES.get(dataset, ()),
                                 height, width, DEFAULT_TIME_TOL,
                                 rvt_box_filter(dataset, downsample_by_2), backend)
    return {k: metrics[k] for k in RVT_METRICS}


def _label_files(folder: str) -> dict[str, str]:
    """``{recording name: path}`` of a folder's ``*_bbox.npy`` (name = stem before
    ``_bbox``) and ``*.npy`` files."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.npy"))):
        name = os.path.basename(path)[:-4]
        name = name[:-5] if name.endswith("_bbox") else name
        out.setdefault(name, path)
    return out


def evaluate_folders(gt_dir, dt_dir, classes: Sequence[str], height: int, width: int,
                     box_filter: PaperBoxFilter | None = None, time_tol: int = DEFAULT_TIME_TOL,
                     backend: str = DEFAULT_BACKEND) -> dict:
    """:func:`evaluate_detection` over two folders of box files paired by recording name
    (``NAME_bbox.npy`` or ``NAME.npy`` in each). Every ground-truth recording needs a detection
    file (a missing one raises :class:`~evstream.errors.MissingFileError`: scoring it as "no
    detections" would hide a failed run); detection files without ground truth are listed in
    ``unmatched_detections``. Returns the metrics plus ``recordings`` (names evaluated)."""
    gt_dir, dt_dir = os.fspath(gt_dir), os.fspath(dt_dir)
    for folder in (gt_dir, dt_dir):
        if not os.path.isdir(folder):
            raise MissingFileError("no such folder", folder)
    gt_files, dt_files = _label_files(gt_dir), _label_files(dt_dir)
    if not gt_files:
        raise MissingFileError("no ground-truth box files (*_bbox.npy or *.npy)", gt_dir)
    missing = [name for name in gt_files if name not in dt_files]
    if missing:
        raise MissingFileError(f"no detection file for {len(missing)} recording(s): "
                               f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
                               dt_dir)
    names = list(gt_files)
    gts = [read_label_file(gt_files[n]) for n in names]
    dts = [read_label_file(dt_files[n], require_score=True) for n in names]
    metrics = evaluate_detection(gts, dts, classes, height, width, time_tol, box_filter, backend)
    metrics["recordings"] = names
    metrics["unmatched_detections"] = sorted(set(dt_files) - set(gt_files))
    return metrics
