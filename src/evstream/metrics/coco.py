"""COCO detection metrics of box arrays, computed by a maintained COCO library.

One *frame* is one COCO image: the ground-truth boxes and the detections that are compared
with each other (the protocol of :mod:`evstream.metrics.protocol` makes one frame per
ground-truth timestamp of each recording). Boxes are EventBbox-like arrays: top-left ``x, y``,
size ``w, h`` (pixels), ``class_id`` (0-based; COCO category id = ``class_id + 1``), and for
detections ``class_confidence`` (the score).

The library is faster-coco-eval by default (``backend="pycocotools"``, the reference's, gives
the same numbers). The COCO records are built as the Prophesee toolbox builds them: image ids
1..N in frame order, every image ``height x width``; annotations with ``bbox [x, y, w, h]``,
``area = w * h``, ``iscrowd`` 0; categories 1..K named after ``classes``. The evaluation is
COCO's own (``COCOeval``, iouType ``bbox``, its defaults: IoU 0.50:0.05:0.95, 101 recall
points, maxDets 1 / 10 / 100, areas small < 32², medium < 96², large). Reported: the 12 values of
``COCOeval.stats`` under the names of :data:`COCO_METRIC_NAMES`. With no detection at all every
value is 0 (COCO cannot load an empty result list; RVT reports 0 in that case).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from evstream.errors import ArgumentError, EventArrayError

#: Names of COCOeval.stats[0..11], in order.
COCO_METRIC_NAMES = ("AP", "AP_50", "AP_75", "AP_S", "AP_M", "AP_L",
                     "AR_1", "AR_10", "AR_100", "AR_S", "AR_M", "AR_L")
#: COCO libraries evstream can drive. They give the same numbers (tested to 1e-6, equal on the
#: benchmark's 12,000 images); faster-coco-eval (a dependency) took 7.1 s where pycocotools
#: (install it to use it) took 26.4 s (benchmarks/bench_metrics.py, AMD EPYC, 2 cores).
BACKENDS = ("pycocotools", "faster_coco_eval")
DEFAULT_BACKEND = "faster_coco_eval"


def _backend(name: str):
    """(COCO class, COCOeval class) of a backend."""
    if name == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        return COCO, COCOeval
    if name == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster
        return COCO, COCOeval_faster
    raise ArgumentError(f"COCO backend must be one of {BACKENDS}, not {name!r}")


def _check_boxes(boxes: np.ndarray, detections: bool) -> None:
    names = getattr(getattr(boxes, "dtype", None), "names", None) or ()
    needed = ("x", "y", "w", "h", "class_id") + (("class_confidence",) if detections else ())
    missing = [k for k in needed if k not in names]
    if missing:
        raise EventArrayError(f"{'detection' if detections else 'ground-truth'} boxes need "
                              f"fields {needed}; missing {missing} in "
                              f"{getattr(boxes, 'dtype', type(boxes))}")


def _annotations(frames: Sequence[np.ndarray], detections: bool) -> list[dict]:
    out = []
    for image_id, boxes in enumerate(frames, start=1):
        _check_boxes(boxes, detections)
        x, y = boxes["x"].tolist(), boxes["y"].tolist()
        w, h = boxes["w"].tolist(), boxes["h"].tolist()
        cat = (boxes["class_id"].astype(np.int64) + 1).tolist()
        score = boxes["class_confidence"].tolist() if detections else None
        for k in range(len(boxes)):
            ann = {"id": len(out) + 1, "image_id": image_id, "bbox": [x[k], y[k], w[k], h[k]],
                   "area": w[k] * h[k], "iscrowd": 0, "category_id": cat[k]}
            if detections:
                ann["score"] = score[k]
            out.append(ann)
    return out


def _coco_object(coco_class, images, categories, annotations):
    coco = coco_class()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_metrics_from_frames(gt_frames: Sequence[np.ndarray], dt_frames: Sequence[np.ndarray],
                             height: int, width: int, classes: Sequence[str],
                             backend: str = DEFAULT_BACKEND) -> dict[str, float]:
    """COCO metrics of equally long sequences of ground-truth and detection box arrays (one
    pair per image; see the module docstring). Returns ``{name: value}`` for
    :data:`COCO_METRIC_NAMES` (COCO's -1, "no ground truth in this area range", is kept)."""
    if len(gt_frames) != len(dt_frames):
        raise ArgumentError(f"{len(gt_frames)} ground-truth frames for {len(dt_frames)} "
                            "detection frames")
    if not classes:
        raise ArgumentError("classes must name at least one category")
    coco_class, eval_class = _backend(backend)
    images = [{"id": i, "height": int(height), "width": int(width), "file_name": f"{i}"}
              for i in range(1, len(gt_frames) + 1)]
    categories = [{"id": k + 1, "name": name, "supercategory": "none"}
                  for k, name in enumerate(classes)]
    gt_annotations = _annotations(gt_frames, detections=False)
    dt_annotations = _annotations(dt_frames, detections=True)
    if not dt_annotations or not images:
        return {name: 0.0 for name in COCO_METRIC_NAMES}
    coco_gt = _coco_object(coco_class, images, categories, gt_annotations)
    coco_dt = _coco_object(coco_class, images, categories, dt_annotations)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = eval_class(coco_gt, coco_dt, "bbox")
        evaluator.params.imgIds = [image["id"] for image in images]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats)}


def format_metrics(metrics: dict[str, float], title: str | None = None) -> str:
    """The metrics as a two-column text table (``-1`` printed as ``n/a``)."""
    rows = [(k, "n/a" if v == -1 else f"{v:.4f}") for k, v in metrics.items()
            if k in COCO_METRIC_NAMES]
    width = max(len(k) for k, _ in rows) if rows else 6
    lines = [title] if title else []
    lines += [f"{'metric'.ljust(width)}  value", f"{'-' * width}  ------"]
    lines += [f"{k.ljust(width)}  {v:>6}" for k, v in rows]
    return "\n".join(lines)
