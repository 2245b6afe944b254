"""Detection metrics as the field reports them: COCO AP / AR on event-camera box arrays.

- :mod:`evstream.metrics.coco`: :func:`coco_metrics_from_frames`, COCO metrics of per-"image"
  box arrays through pycocotools (or faster-coco-eval, same numbers).
- :mod:`evstream.metrics.protocol`: the Prophesee automotive toolbox's protocol
  (:func:`evaluate_detection`: box filter on ground truth and detections, 50 ms time matching,
  category id = class_id + 1), RVT's use of it (:func:`evaluate_rvt`), and
  :func:`evaluate_folders` behind ``evstream evaluate``.
"""

from evstream.metrics.coco import COCO_METRIC_NAMES, coco_metrics_from_frames, format_metrics
from evstream.metrics.protocol import (RVT_CLASSES, evaluate_detection, evaluate_folders,
                                       evaluate_rvt, match_boxes_by_time, rvt_box_filter)

__all__ = ["COCO_METRIC_NAMES", "coco_metrics_from_frames", "format_metrics", "RVT_CLASSES",
           "evaluate_detection", "evaluate_folders", "evaluate_rvt", "match_boxes_by_time",
           "rvt_box_filter"]
