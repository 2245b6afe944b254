"""A small recurrent detector and its training loop, to show the loaders in use.

Not part of the data stack: nothing in ``evstream.io`` / ``preprocessing`` / ``data`` imports it.

- :mod:`evstream.demo.detector`: :class:`RecurrentDetector` (strided conv encoder -> ConvGRU ->
  center-heatmap / size / offset heads), :func:`make_targets`, :func:`detection_loss`,
  :func:`decode_detections`.
- :mod:`evstream.demo.training`: :func:`train` (the tutorial's truncated-BPTT loop),
  :func:`evaluate` (AP@0.5 and mean best IoU on labeled bins), :func:`trivial_baseline`.

Both take plain iterables of batch dicts (what :class:`evstream.data.SequentialDataLoader`
yields), so a list of hand-made batches works as well as a loader.
"""

from evstream.demo.detector import (ConvGRUCell, RecurrentDetector, decode_detections,
                                    detection_loss, make_targets)
from evstream.demo.training import (detection_metrics, evaluate, loss_curve_summary,
                                    mean_box_predictor, train, trivial_baseline)

__all__ = ["ConvGRUCell", "RecurrentDetector", "decode_detections", "detection_loss",
           "make_targets", "detection_metrics", "evaluate", "loss_curve_summary",
           "mean_box_predictor", "train", "trivial_baseline"]
