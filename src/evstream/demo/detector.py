"""A small recurrent center-point detector for event tensors.

Model (:class:`RecurrentDetector`)::

    x [N, C, H, W] --strided 3x3 convs (stride s = 2, 4, 8 or 16)--> features [N, F, H/s, W/s]
                   --ConvGRU cell (memory kept across calls)--------> state    [N, F, H/s, W/s]
                   --heads on concat(features, state)--> heatmap_logits [N, K, H/s, W/s]
                                                         size           [N, 2, H/s, W/s]
                                                         offset         [N, 2, H/s, W/s]

Each box is represented by the feature cell holding its center ``(x + w/2, y + h/2) / s``:

- ``heatmap``: per class ``k`` (channel ``class_id - 1``), a 2-D Gaussian peaking at exactly 1.0
  on the center cell, ``sigma = max(min_sigma, extent / (6 s))`` per axis (the box's own extent
  covers about +-3 sigma), Gaussians of the same class combined by maximum. Trained with a
  penalty-reduced focal loss (positives: the cells equal to 1).
- ``size``: ``(log w, log h)`` in tensor pixels, regressed with L1 on center cells only.
- ``offset``: ``center / s - cell`` (in ``[0, 1)`` inside the map), L1 on center cells only.

Boxes are :data:`~evstream.io.EventBbox` arrays in tensor pixels (top-left ``x, y``, ``w, h``);
``class_id`` is ``1..K`` (0 is the background and is never a box). Anything else in a label
slot (``torch.empty(0)``, ``float('nan')`` for padding, ``None``) means "no boxes"; boxes with a
class outside ``1..K`` (e.g. the loaders' "ignore" class 4294967295) or a non-positive size
are left out of the targets.

Memory: :meth:`RecurrentDetector.reset` multiplies the state by ``mask_keep_memory`` (0 = a new
recording starts in that slot) and detaches it, which truncates backpropagation at the batch
boundary (the tutorial's loop calls it once per batch).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evstream.errors import ArgumentError
from evstream.io import EventBbox

__all__ = ["ConvGRUCell", "RecurrentDetector", "make_targets", "detection_loss",
           "decode_detections", "boxes_of"]

#: prior probability of an object on a cell, used to initialise the heatmap bias (so the first
#: losses are not dominated by confident false positives on the many empty cells)
_HEATMAP_PRIOR = 0.1


class ConvGRUCell(nn.Module):
    """Convolutional GRU: ``z, r = sigmoid(W_zr * [x, h])``, ``n = tanh(W_n * [x, r h])``,
    ``h' = (1 - z) h + z n``. A missing state (``None``) is zeros."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden, x.shape[2], x.shape[3])
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return (1 - z) * h + z * n


def _head(in_channels: int, mid: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, mid, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, out, 1))


class RecurrentDetector(nn.Module):
    """Strided conv encoder -> ConvGRU -> center heatmap / size / offset heads.

    Args:
        in_channels: ``C`` of the input tensors (2 for ``histo``).
        num_classes: ``K``; labels use class ids ``1..K``.
        hidden: channels of the features and of the recurrent state.
        stride: total downsampling of the encoder (2, 4, 8 or 16).
        head_channels: channels of each head's hidden layer (default ``hidden // 2``).

    Call :meth:`forward` once per time bin, in order; the state is kept on the module between
    calls. :meth:`reset` with the batch's ``mask_keep_memory`` before each batch.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 64, stride: int = 4,
                 head_channels: int | None = None):
        super().__init__()
        if stride not in (2, 4, 8, 16):
            raise ArgumentError(f"stride must be 2, 4, 8 or 16, got {stride}")
        if num_classes < 1:
            raise ArgumentError(f"num_classes must be >= 1, got {num_classes}")
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.hidden, self.stride = int(hidden), int(stride)
        layers, ch = [], self.in_channels
        n_down = int(math.log2(stride))
        for i in range(n_down):                       # 3x3 stride-2 convs, widths 16, 32, ...
            out = min(self.hidden, 16 * 2 ** i)
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            ch = out
        layers += [nn.Conv2d(ch, self.hidden, 3, padding=1), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*layers)
        self.rnn = ConvGRUCell(self.hidden, self.hidden)
        mid = head_channels or max(8, self.hidden // 2)
        self.heatmap_head = _head(2 * self.hidden, mid, self.num_classes)
        self.size_head = _head(2 * self.hidden, mid, 2)
        self.offset_head = _head(2 * self.hidden, mid, 2)
        nn.init.constant_(self.heatmap_head[-1].bias, -math.log((1 - _HEATMAP_PRIOR) / _HEATMAP_PRIOR))
        nn.init.constant_(self.size_head[-1].bias, math.log(4.0 * self.stride))
        nn.init.constant_(self.offset_head[-1].bias, 0.5)
        self.state: torch.Tensor | None = None

    def reset(self, mask_keep_memory=None) -> None:
        """Prepares the memory for a new batch: ``state = state.detach() * mask`` (``mask``
        ``[N, 1, 1, 1]`` or ``[N]``; 0 zeroes the slot, 1 keeps it). Detaching truncates
        backpropagation here. ``None``, or a mask whose ``N`` differs from the state's (the
        batch size changed), drops the whole memory (the next forward starts from zeros)."""
        if self.state is None:
            return
        if mask_keep_memory is None:
            self.state = None
            return
        mask = torch.as_tensor(mask_keep_memory).to(device=self.state.device,
                                                    dtype=self.state.dtype).reshape(-1, 1, 1, 1)
        if mask.shape[0] != self.state.shape[0]:
            self.state = None
            return
        self.state = self.state.detach() * mask

    def forward(self, x: torch.Tensor) -> dict:
        """One time bin ``x [N, C, H, W]`` -> ``{"heatmap_logits" [N, K, h, w], "size" [N, 2,
        h, w] (log w, log h in tensor pixels), "offset" [N, 2, h, w]}`` with ``h, w = ceil(H /
        stride), ceil(W / stride)``; updates the memory."""
        feat = self.encoder(x)
        state = self.state
        if state is not None and (state.shape[0] != feat.shape[0] or state.shape[2:] != feat.shape[2:]):
            state = None                              # new geometry or batch size: fresh memory
        self.state = self.rnn(feat, state)
        both = torch.cat([feat, self.state], dim=1)
        return {"heatmap_logits": self.heatmap_head(both), "size": self.size_head(both),
                "offset": self.offset_head(both)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ------------------------------------------------------------------------------------ targets
def boxes_of(entry, num_classes: int | None = None) -> np.ndarray:
    """The boxes of one label slot as an EventBbox array: the slot itself when it is a
    structured array with the EventBbox fields, else an empty array (padding ``nan``,
    ``torch.empty(0)``, ``None``). With ``num_classes``, only boxes with ``1 <= class_id <= K``
    and ``w, h > 0`` are kept."""
    if not (isinstance(entry, np.ndarray) and entry.dtype.names is not None
            and all(k in entry.dtype.names for k in ("x", "y", "w", "h", "class_id"))):
        return np.zeros(0, EventBbox)
    boxes = entry.reshape(-1)
    if num_classes is not None:
        cls = boxes["class_id"].astype(np.int64)
        keep = (cls >= 1) & (cls <= num_classes) & (boxes["w"] > 0) & (boxes["h"] > 0)
        boxes = boxes[keep]
    return boxes


def make_targets(labels_of_one_bin, N: int, out_h: int, out_w: int, stride: int,
                 num_classes: int, min_sigma: float = 0.5, device=None) -> dict:
    """Training targets for ``N`` items of one time bin (or any list of ``N`` label slots).

    Returns torch float32 tensors: ``heatmap [N, K, out_h, out_w]``, ``size [N, 2, out_h,
    out_w]`` (log w, log h), ``offset [N, 2, out_h, out_w]``, ``mask [N, out_h, out_w]`` (1 on
    center cells) and ``num_objects`` (int). See the module docstring for the encoding. The
    center cell is clipped into the map (the offset then carries the rest); when two boxes share
    a center cell, the later one's size and offset win.
    """
    if len(labels_of_one_bin) != N:
        raise ArgumentError(f"{len(labels_of_one_bin)} label slots for N={N}")
    heat = np.zeros((N, num_classes, out_h, out_w), np.float32)
    size = np.zeros((N, 2, out_h, out_w), np.float32)
    offset = np.zeros((N, 2, out_h, out_w), np.float32)
    mask = np.zeros((N, out_h, out_w), np.float32)
    ys = np.arange(out_h, dtype=np.float64)[:, None]
    xs = np.arange(out_w, dtype=np.float64)[None, :]
    count = 0
    for n, entry in enumerate(labels_of_one_bin):
        for box in boxes_of(entry, num_classes):
            w, h = float(box["w"]), float(box["h"])
            cx = (float(box["x"]) + w / 2) / stride
            cy = (float(box["y"]) + h / 2) / stride
            i = min(max(int(math.floor(cx)), 0), out_w - 1)
            j = min(max(int(math.floor(cy)), 0), out_h - 1)
            sx = max(min_sigma, w / (6.0 * stride))
            sy = max(min_sigma, h / (6.0 * stride))
            g = np.exp(-((xs - i) ** 2) / (2 * sx * sx) - ((ys - j) ** 2) / (2 * sy * sy))
            k = int(box["class_id"]) - 1
            np.maximum(heat[n, k], g.astype(np.float32), out=heat[n, k])
            heat[n, k, j, i] = 1.0
            size[n, :, j, i] = (math.log(w), math.log(h))
            offset[n, :, j, i] = (cx - i, cy - j)
            mask[n, j, i] = 1.0
            count += 1
    as_t = lambda a: torch.from_numpy(a).to(device) if device is not None else torch.from_numpy(a)
    return {"heatmap": as_t(heat), "size": as_t(size), "offset": as_t(offset),
            "mask": as_t(mask), "num_objects": count}


# ------------------------------------------------------------------------------------ loss
def detection_loss(outputs: dict, targets: dict, size_weight: float = 1.0,
                   offset_weight: float = 1.0, alpha: float = 2.0, beta: float = 4.0,
                   return_parts: bool = False):
    """Loss of predictions against :func:`make_targets` targets (same leading shape ``[M]``).

    ``heatmap``: penalty-reduced focal loss on ``p = sigmoid(logits)``, target ``y``:
    ``-(1-p)^alpha log p`` on cells with ``y == 1`` and ``-(1-y)^beta p^alpha log(1-p)``
    elsewhere, summed and divided by the number of objects (at least 1). ``size``/``offset``:
    L1 on center cells, summed over both components and divided likewise. Total: ``heatmap +
    size_weight * size + offset_weight * offset``; with ``return_parts`` also a dict of the
    three parts (floats).
    """
    logits = outputs["heatmap_logits"]
    y = targets["heatmap"].to(logits)
    pos = (y >= 1.0).to(logits)
    p = torch.sigmoid(logits)
    pos_term = (1 - p) ** alpha * F.logsigmoid(logits) * pos
    neg_term = (1 - y) ** beta * p ** alpha * F.logsigmoid(-logits) * (1 - pos)
    n_obj = max(float(targets["mask"].sum()), 1.0)
    heat_loss = -(pos_term.sum() + neg_term.sum()) / n_obj
    m = targets["mask"].to(logits).unsqueeze(1)
    size_loss = ((outputs["size"] - targets["size"].to(logits)).abs() * m).sum() / n_obj
    off_loss = ((outputs["offset"] - targets["offset"].to(logits)).abs() * m).sum() / n_obj
    total = heat_loss + size_weight * size_loss + offset_weight * off_loss
    if return_parts:
        return total, {"heatmap": float(heat_loss), "size": float(size_loss),
                       "offset": float(off_loss)}
    return total


# ------------------------------------------------------------------------------------ decoding
@torch.no_grad()
def decode_detections(outputs: dict, stride: int, score_thresh: float = 0.3, max_det: int = 100,
                      ts: int = 0) -> list:
    """Boxes from one bin's outputs: ``N`` EventBbox arrays in tensor pixels, sorted by
    decreasing score (``class_confidence``), ``track_id`` = rank, ``t = ts``.

    Peaks are the cells equal to the maximum of their 3x3 neighbourhood (within a class) with a
    score ``>= score_thresh``; at most ``max_det`` per item. Scores are ``outputs["heatmap"]``
    when present (e.g. targets from :func:`make_targets`), else ``sigmoid(heatmap_logits)``.
    Each peak at cell ``(i, j)`` gives center ``((i, j) + offset) * stride`` and size ``exp(size)``.
    """
    heat = outputs["heatmap"] if "heatmap" in outputs else torch.sigmoid(outputs["heatmap_logits"])
    heat = heat.detach().float()
    N, K, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    flat = peaks.reshape(N, -1)
    k = min(int(max_det), flat.shape[1])
    scores, idx = flat.topk(k, dim=1)
    size = outputs["size"].detach().float()
    offset = outputs["offset"].detach().float()
    result = []
    for n in range(N):
        keep = scores[n] >= score_thresh
        sc, ix = scores[n][keep], idx[n][keep]
        cls = ix // (h * w)
        cell = ix % (h * w)
        j, i = cell // w, cell % w
        bw = torch.exp(size[n, 0, j, i])
        bh = torch.exp(size[n, 1, j, i])
        cx = (i.float() + offset[n, 0, j, i]) * stride
        cy = (j.float() + offset[n, 1, j, i]) * stride
        out = np.zeros(len(sc), EventBbox)
        out["t"] = ts
        out["x"] = (cx - bw / 2).cpu().numpy()
        out["y"] = (cy - bh / 2).cpu().numpy()
        out["w"], out["h"] = bw.cpu().numpy(), bh.cpu().numpy()
        out["class_id"] = (cls + 1).cpu().numpy()
        out["track_id"] = np.arange(len(sc))
        out["class_confidence"] = sc.cpu().numpy()
        result.append(out)
    return result
