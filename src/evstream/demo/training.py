"""Training and evaluation of :class:`~evstream.demo.detector.RecurrentDetector` on batch dicts.

Every function takes a plain iterable of batch dicts as :class:`evstream.data.SequentialDataLoader`
yields them (``inputs [T, N, C, H, W]``, ``labels`` T lists of N slots, ``mask_keep_memory [N, 1,
1, 1]``, ``frame_is_labeled [T, N]``), so a loader, a list of hand-made batches or a generator
all work.

:func:`train` is the tutorial's loop, one optimizer step per batch::

    net.reset(mask_keep_memory)          # zero new recordings' memory, detach the rest (TBPTT)
    optimizer.zero_grad()
    predictions = [net(x) for x in inputs]              # chronological over the T bins
    loss = detection_loss(predictions[frame_is_labeled], targets[frame_is_labeled])
    loss.backward(); optimizer.step()

The field's metric, COCO mAP (:func:`coco_detection_metrics`, through :mod:`evstream.metrics`),
takes the frames :func:`evaluate` returns with ``return_predictions``.

Metrics (:func:`detection_metrics`), computed on the labeled bins only (one "frame" = one
labeled ``(bin, item)``):

- ``ap``: average precision at IoU >= ``iou_thresh`` (0.5 by default), per class then averaged
  over the classes that have ground truth. Detections of a class are ranked by score over all
  frames; each is a true positive when it overlaps a not-yet-matched box of its class and frame
  with IoU >= the threshold (greedy, best IoU first), else a false positive. AP is the area
  under the precision-recall curve after making precision non-increasing (PASCAL VOC 2010+
  "all points" interpolation).
- ``mean_best_iou``: over all ground-truth boxes, the best IoU with a detection of the same
  class and score >= ``iou_score_thresh`` (0 when there is none).

IoU uses continuous corners ``(x, y)``-``(x + w, y + h)`` (no +1 pixel convention).

:func:`trivial_baseline` scores a predictor that ignores the input: for every labeled frame it
predicts, for each class seen in training, that class's mean training box (mean center, mean
width and height) with score 1. A detector that learned anything from the events must beat it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from evstream.demo.detector import boxes_of, decode_detections, detection_loss, make_targets
from evstream.errors import ArgumentError
from evstream.io import EventBbox

__all__ = ["train", "evaluate", "detection_metrics", "trivial_baseline", "mean_box_predictor",
           "loss_curve_summary", "box_iou", "average_precision", "coco_detection_metrics"]


# ------------------------------------------------------------------------------------ helpers
def _batches(source, limit=None):
    """Yields batch dicts from an iterable, or from a factory (a callable returning one, called
    again at each pass), cycling passes until ``limit`` batches have been yielded. A pass that
    yields nothing (an exhausted generator) ends it."""
    done = 0
    while limit is None or done < limit:
        iterable = source() if (callable(source) and not isinstance(source, Iterable)) else source
        got = False
        for data in iterable:
            got = True
            yield data
            done += 1
            if limit is not None and done >= limit:
                return
        if not got or limit is None:
            return


def _stack_outputs(predictions):
    return {k: torch.stack([p[k] for p in predictions]) for k in predictions[0]}


# ------------------------------------------------------------------------------------ training
def train(batches, net, steps: int, lr: float = 1e-3, device="cpu", progress: bool = True,
          optimizer=None, grad_clip: float | None = 10.0, loss_kwargs: dict | None = None) -> list:
    """Trains ``net`` for ``steps`` batches with the tutorial's truncated-BPTT loop.

    Args:
        batches: an iterable of batch dicts (a :class:`~evstream.data.SequentialDataLoader`, a
            list...) or a factory returning one; passes are repeated until ``steps`` batches
            were seen (a one-shot generator stops earlier when it runs out).
        net: a module with ``reset(mask_keep_memory)``, ``forward(x [N, C, H, W]) -> dict``,
            ``stride`` and ``num_classes`` (a :class:`~evstream.demo.RecurrentDetector`).
        steps: number of batches (one optimizer step each).
        lr: Adam learning rate (ignored when ``optimizer`` is given).
        device: where the net and the batches go.
        progress: a tqdm bar with the running loss (drawn only on a terminal).
        grad_clip: max gradient norm (None: no clipping).
        loss_kwargs: passed to :func:`~evstream.demo.detector.detection_loss`.

    Returns the loss of each batch (float; ``nan`` for a batch with no labeled bin, which is
    played forward to carry the memory but makes no optimizer step).
    """
    device = torch.device(device)
    net.to(device).train()
    opt = optimizer if optimizer is not None else torch.optim.Adam(net.parameters(), lr=lr)
    loss_kwargs = loss_kwargs or {}
    losses = []
    bar = tqdm(total=steps, desc="train", disable=None if progress else True, leave=True)
    running = None
    try:
        for data in _batches(batches, steps):
            # reset the memory of new recordings and detach the rest: truncated backpropagation
            net.reset(data["mask_keep_memory"].to(device))
            opt.zero_grad()
            # chronological forward pass over the T bins
            predictions = _stack_outputs([net(x) for x in data["inputs"].to(device)])
            # the loss is computed on the labeled bins only
            labeled = torch.as_tensor(data["frame_is_labeled"], dtype=torch.bool)
            if not bool(labeled.any()):
                losses.append(float("nan"))
                bar.update(1)
                continue
            pairs = np.argwhere(labeled.cpu().numpy())          # (t, n), the order of [labeled]
            slots = [data["labels"][t][n] for t, n in pairs]
            out_h, out_w = predictions["heatmap_logits"].shape[-2:]
            targets = make_targets(slots, len(slots), out_h, out_w, net.stride, net.num_classes,
                                   device=device)
            selected = {k: v[labeled.to(device)] for k, v in predictions.items()}
            loss = detection_loss(selected, targets, **loss_kwargs)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            opt.step()
            value = float(loss.detach())
            losses.append(value)
            running = value if running is None else 0.9 * running + 0.1 * value
            bar.set_postfix(loss=f"{running:.3f}")
            bar.update(1)
    finally:
        bar.close()
    return losses


def loss_curve_summary(losses, window: int = 20, points: int = 10) -> str:
    """A few lines describing a loss curve: mean of the first and last ``window`` steps and
    their ratio, the minimum, and the mean of ``points`` equal segments (NaNs ignored)."""
    values = np.asarray(losses, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "loss: no labeled batch"
    w = max(1, min(window, finite.size // 2 or 1))
    first, last = finite[:w].mean(), finite[-w:].mean()
    segs = np.array_split(finite, min(points, finite.size))
    curve = " ".join(f"{s.mean():.3f}" for s in segs)
    return (f"loss over {len(values)} steps ({finite.size} with labels): first {w} mean "
            f"{first:.4f} -> last {w} mean {last:.4f} (x{last / first:.2f}), min "
            f"{finite.min():.4f}\nloss curve ({len(segs)} segments): {curve}")


# ------------------------------------------------------------------------------------ metrics
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(a), len(b)]`` of two EventBbox arrays (continuous corners)."""
    ax1, ay1 = a["x"].astype(np.float64), a["y"].astype(np.float64)
    ax2, ay2 = ax1 + a["w"], ay1 + a["h"]
    bx1, by1 = b["x"].astype(np.float64), b["y"].astype(np.float64)
    bx2, by2 = bx1 + b["w"], by1 + b["h"]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(ax1[:, None], bx1[None]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(ay1[:, None], by1[None]), 0, None)
    inter = iw * ih
    union = (ax2 - ax1)[:, None] * (ay2 - ay1)[:, None] + ((bx2 - bx1) * (by2 - by1))[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def average_precision(scores, is_tp, num_gt: int) -> float:
    """VOC all-point AP from detection scores, their TP flags and the number of ground-truth
    boxes (``nan`` when ``num_gt == 0``). Ties in score keep the given order."""
    if num_gt == 0:
        return float("nan")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.asarray(is_tp, dtype=np.float64)[order]
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(1 - tp)
    recall = tp_cum / num_gt
    precision = tp_cum / (tp_cum + fp_cum)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]            # non-increasing envelope
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def detection_metrics(predictions, ground_truths, num_classes: int, iou_thresh: float = 0.5,
                      iou_score_thresh: float = 0.3) -> dict:
    """Metrics of per-frame detections against per-frame ground truth (two equally long
    sequences of EventBbox arrays; see the module docstring).

    Returns ``{"ap", "ap_per_class" {class_id: ap or nan}, "mean_best_iou", "iou_thresh",
    "num_frames", "num_gt", "num_detections"}``.
    """
    if len(predictions) != len(ground_truths):
        raise ArgumentError(f"{len(predictions)} prediction frames for {len(ground_truths)} "
                         "ground-truth frames")
    scores = {k: [] for k in range(1, num_classes + 1)}
    flags = {k: [] for k in range(1, num_classes + 1)}
    n_gt = {k: 0 for k in range(1, num_classes + 1)}
    best_ious = []
    n_det = 0
    for pred, gt in zip(predictions, ground_truths):
        pred, gt = boxes_of(pred, num_classes), boxes_of(gt, num_classes)
        n_det += len(pred)
        for k in range(1, num_classes + 1):
            g = gt[gt["class_id"] == k]
            p = pred[pred["class_id"] == k]
            p = p[np.argsort(-p["class_confidence"].astype(np.float64), kind="stable")]
            n_gt[k] += len(g)
            iou = box_iou(p, g) if len(p) and len(g) else np.zeros((len(p), len(g)))
            matched = np.zeros(len(g), bool)
            for d in range(len(p)):
                cand = np.where(matched, -1.0, iou[d]) if len(g) else np.zeros(0)
                hit = len(g) > 0 and cand.max() >= iou_thresh
                if hit:
                    matched[int(cand.argmax())] = True
                scores[k].append(float(p["class_confidence"][d]))
                flags[k].append(bool(hit))
            if len(g):
                confident = p["class_confidence"] >= iou_score_thresh
                best = iou[confident].max(axis=0) if confident.any() else np.zeros(len(g))
                best_ious.extend(best.tolist())
    ap_per_class = {k: average_precision(scores[k], flags[k], n_gt[k])
                    for k in range(1, num_classes + 1)}
    valid = [v for v in ap_per_class.values() if not math.isnan(v)]
    return {"ap": float(np.mean(valid)) if valid else float("nan"),
            "ap_per_class": ap_per_class,
            "mean_best_iou": float(np.mean(best_ious)) if best_ious else float("nan"),
            "iou_thresh": iou_thresh, "num_frames": len(ground_truths),
            "num_gt": int(sum(n_gt.values())), "num_detections": int(n_det)}


def _labeled_slots(data):
    labeled = np.asarray(torch.as_tensor(data["frame_is_labeled"], dtype=torch.bool).cpu())
    for t, n in np.argwhere(labeled):
        yield t, n, data["labels"][t][n]


@torch.no_grad()
def evaluate(net, batches, score_thresh: float = 0.05, max_det: int = 50,
             iou_thresh: float = 0.5, iou_score_thresh: float = 0.3, device="cpu",
             max_batches: int | None = None, progress: bool = False,
             return_predictions: bool = False) -> dict:
    """Plays ``batches`` through ``net`` (same reset/forward loop as :func:`train`, no
    gradients, eval mode) and scores its detections on every labeled ``(bin, item)`` with
    :func:`detection_metrics`. The memory is dropped before the first batch; the net's memory
    and train/eval mode are restored afterwards (training can go on where it was).

    ``score_thresh`` / ``max_det``: decoding (low threshold: AP ranks by score);
    ``iou_score_thresh``: the detections counted by ``mean_best_iou``. With
    ``return_predictions`` the dict also holds ``predictions`` and ``ground_truths`` (lists of
    EventBbox arrays, one per labeled frame).
    """
    device = torch.device(device)
    was_training = net.training
    saved_state = getattr(net, "state", None)    # training memory, given back at the end
    net.to(device).eval()
    net.reset(None)
    preds, gts = [], []
    try:
        for data in tqdm(_batches(batches, max_batches), desc="evaluate",
                         disable=None if progress else True):
            net.reset(data["mask_keep_memory"].to(device))
            labeled = torch.as_tensor(data["frame_is_labeled"], dtype=torch.bool).cpu()
            for t, x in enumerate(data["inputs"].to(device)):
                out = net(x)
                items = torch.nonzero(labeled[t]).flatten()
                if len(items) == 0:
                    continue
                dets = decode_detections({k: v[items.to(device)] for k, v in out.items()},
                                         net.stride, score_thresh=score_thresh, max_det=max_det)
                for n, det in zip(items.tolist(), dets):
                    preds.append(det)
                    gts.append(boxes_of(data["labels"][t][n], net.num_classes))
    finally:
        net.train(was_training)
        if hasattr(net, "state"):
            net.state = saved_state
    metrics = detection_metrics(preds, gts, net.num_classes, iou_thresh, iou_score_thresh)
    if return_predictions:
        metrics["predictions"], metrics["ground_truths"] = preds, gts
    return metrics


# ------------------------------------------------------------------------------------ baseline
def mean_box_predictor(batches, num_classes: int, max_batches: int | None = None) -> np.ndarray:
    """The input-blind prediction: for each class with boxes on the labeled bins of
    ``batches``, one box with the mean center and mean size of those boxes, score 1.0
    (EventBbox array, at most ``num_classes`` boxes)."""
    sums = np.zeros((num_classes + 1, 4))
    counts = np.zeros(num_classes + 1)
    for data in _batches(batches, max_batches):
        for _, _, slot in _labeled_slots(data):
            b = boxes_of(slot, num_classes)
            cls = b["class_id"].astype(np.int64)
            geo = np.stack([b["x"] + b["w"] / 2, b["y"] + b["h"] / 2, b["w"], b["h"]], 1)
            np.add.at(sums, cls, geo)
            np.add.at(counts, cls, 1)
    classes = np.flatnonzero(counts[1:]) + 1
    out = np.zeros(len(classes), EventBbox)
    mean = sums[classes] / counts[classes, None]
    out["x"], out["y"] = mean[:, 0] - mean[:, 2] / 2, mean[:, 1] - mean[:, 3] / 2
    out["w"], out["h"] = mean[:, 2], mean[:, 3]
    out["class_id"], out["track_id"], out["class_confidence"] = classes, np.arange(len(classes)), 1.0
    return out


def trivial_baseline(train_batches, eval_batches, num_classes: int, iou_thresh: float = 0.5,
                     iou_score_thresh: float = 0.3, max_batches: int | None = None,
                     return_predictions: bool = False) -> dict:
    """Metrics of the input-blind baseline (:func:`mean_box_predictor` fitted on
    ``train_batches``, predicted on every labeled frame of ``eval_batches``), in the format of
    :func:`evaluate` (``return_predictions`` as there). ``max_batches`` bounds each of the two
    passes."""
    guess = mean_box_predictor(train_batches, num_classes, max_batches)
    gts = [boxes_of(slot, num_classes) for data in _batches(eval_batches, max_batches)
           for _, _, slot in _labeled_slots(data)]
    metrics = detection_metrics([guess] * len(gts), gts, num_classes, iou_thresh,
                                iou_score_thresh)
    if return_predictions:
        metrics["predictions"], metrics["ground_truths"] = [guess] * len(gts), gts
    return metrics


def coco_detection_metrics(predictions, ground_truths, class_names, height: int,
                           width: int) -> dict:
    """COCO metrics (:func:`evstream.metrics.coco_metrics_from_frames`: AP 0.50:0.95, AP_50,
    ...) of per-frame detections against per-frame ground truth, as :func:`evaluate` returns
    them with ``return_predictions``: one COCO image of ``height x width`` per labeled frame,
    class ids 1..K (the loader's) named ``class_names[0..K-1]``."""
    from evstream.metrics import coco_metrics_from_frames

    def zero_based(frames):
        out = []
        for boxes in frames:
            boxes = boxes.copy()
            boxes["class_id"] -= 1
            out.append(boxes)
        return out
    return coco_metrics_from_frames(zero_based(ground_truths), zero_based(predictions), height,
                                    width, list(class_names))
