"""RVT's batch contract, and the metavision-style batch of the same samples.

An *item* (one sample, made by :mod:`evstream.rvt.loader`) is a dict:

* ``frames``: uint8 tensor ``(L, C, H', W')`` (zeros on padded steps);
* ``labels``: L entries, a float32 ``(n, 7)`` array (columns t, x, y, w, h, class_id,
  class_confidence) or None;
* ``is_first_sample``: bool; ``is_padded_mask``: bool array (L,);
* ``input_size_hw``: ``(H', W')``; ``info``: ``(sequence name, first window, last window + 1)``.

:func:`collate_rvt` turns B items into RVT's dict ``{"data": {...}, "worker_id": 0}`` with the
keys of :class:`DataType` (or of the caller's own enum with the same member names, so that an
RVT fork keeps its ``DataType``):

* ``EV_REPR``: L tensors ``(B, C, H', W')`` uint8;
* ``OBJLABELS_SEQ``: L :class:`SparselyBatchedObjectLabels`, each B entries of
  :class:`ObjectLabels` or None (an entry with zero boxes becomes None);
* ``IS_FIRST_SAMPLE``: bool tensor (B,); ``IS_PADDED_MASK``: L bool tensors (B,).

``worker_id`` is always 0: evstream's loader assembles every batch from all workers with a
fixed slot per batch row, so one recurrent state per row is right (RVT keys states by worker
because each of its batches comes from one worker).

:func:`collate_metavision` gives evstream's usual batch: ``inputs`` float32
``[L, B, C, H', W']``, ``labels`` L lists of B ``EventBbox`` arrays, ``mask_keep_memory``
float32 ``[B, 1, 1, 1]`` (0 where ``is_first_sample``), ``frame_is_labeled`` bool ``[L, B]``,
``is_padded_mask`` bool ``[L, B]`` and ``video_infos``.
"""

from __future__ import annotations

from enum import Enum, auto

import numpy as np
import torch

from evstream.data.sequential_dataset_common import stack_inputs
from evstream.io.dtypes import EventBbox


class DataType(Enum):
    """Keys of ``batch["data"]`` (RVT's member names)."""

    EV_REPR = auto()
    OBJLABELS_SEQ = auto()
    IS_FIRST_SAMPLE = auto()
    IS_PADDED_MASK = auto()
    TOKEN_MASK = auto()


class ObjectLabels:
    """The boxes of one frame: float32 tensor ``(n, 7)`` with columns t, x, y, w, h, class_id,
    class_confidence (pixels of the ``input_size_hw`` frame)."""

    def __init__(self, object_labels: torch.Tensor, input_size_hw: tuple[int, int]):
        self.object_labels = object_labels
        self.input_size_hw = tuple(input_size_hw)

    def __len__(self) -> int:
        return int(self.object_labels.shape[0])

    def _column(self, i: int) -> torch.Tensor:
        return self.object_labels[:, i]

    t = property(lambda self: self._column(0))
    x = property(lambda self: self._column(1))
    y = property(lambda self: self._column(2))
    w = property(lambda self: self._column(3))
    h = property(lambda self: self._column(4))
    class_id = property(lambda self: self._column(5))
    class_confidence = property(lambda self: self._column(6))

    def to(self, device) -> "ObjectLabels":
        return ObjectLabels(self.object_labels.to(device), self.input_size_hw)

    def yolox_targets(self) -> torch.Tensor:
        """``(n, 5)``: class_id, centre x, centre y, w, h."""
        lab = self.object_labels
        return torch.stack([lab[:, 5], lab[:, 1] + lab[:, 3] / 2, lab[:, 2] + lab[:, 4] / 2,
                            lab[:, 3], lab[:, 4]], dim=1)

    def __repr__(self) -> str:
        return f"ObjectLabels({len(self)} boxes, input_size_hw={self.input_size_hw})"


class SparselyBatchedObjectLabels(list):
    """One time step of a batch: B entries, an :class:`ObjectLabels` or None."""

    def yolox_targets(self) -> torch.Tensor:
        """``(B, n_max, 5)`` targets of :meth:`ObjectLabels.yolox_targets`, zero-padded to the
        largest box count (None entries are all zeros)."""
        n_max = max((len(e) for e in self if e is not None), default=0)
        out = torch.zeros((len(self), n_max, 5), dtype=torch.float32)
        for b, entry in enumerate(self):
            if entry is not None and len(entry):
                out[b, :len(entry)] = entry.yolox_targets()
        return out

    def to(self, device) -> "SparselyBatchedObjectLabels":
        return SparselyBatchedObjectLabels(None if e is None else e.to(device) for e in self)


def _object_labels(table, input_size_hw) -> ObjectLabels | None:
    if table is None or len(table) == 0:
        return None
    return ObjectLabels(torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32)),
                        input_size_hw)


def collate_rvt(items: list[dict], data_type=DataType) -> dict:
    """RVT's batch dict of B items (module docstring); ``data_type`` is the enum whose members
    (looked up by name) key ``batch["data"]``."""
    frames = stack_inputs([item["frames"] for item in items])            # (L, B, C, H, W)
    length = frames.shape[0]
    labels = [SparselyBatchedObjectLabels(_object_labels(item["labels"][k], item["input_size_hw"])
                                          for item in items) for k in range(length)]
    padded = torch.from_numpy(np.stack([item["is_padded_mask"] for item in items], axis=1))
    first = torch.tensor([bool(item["is_first_sample"]) for item in items], dtype=torch.bool)
    key = data_type.__getitem__
    return {"data": {key("EV_REPR"): list(frames.unbind(0)),
                     key("OBJLABELS_SEQ"): labels,
                     key("IS_FIRST_SAMPLE"): first,
                     key("IS_PADDED_MASK"): list(padded.unbind(0))},
            "worker_id": 0}


def boxes_from_table(table: np.ndarray | None) -> np.ndarray:
    """An ``EventBbox`` array from RVT's ``(n, 7)`` label table (track_id 0: RVT's loader drops
    it; ``t`` back to int64 from float32)."""
    if table is None:
        return np.zeros(0, EventBbox)
    out = np.zeros(len(table), EventBbox)
    for i, name in enumerate(("t", "x", "y", "w", "h", "class_id", "class_confidence")):
        out[name] = table[:, i]
    return out


def collate_metavision(items: list[dict]) -> dict:
    """evstream's metavision-style batch of the same items (module docstring)."""
    frames = stack_inputs([item["frames"] for item in items], torch.float32)
    length = frames.shape[0]
    labels = [[boxes_from_table(item["labels"][k]) for item in items] for k in range(length)]
    labeled = np.array([[item["labels"][k] is not None and len(item["labels"][k]) > 0
                         for item in items] for k in range(length)], dtype=bool)
    keep = torch.tensor([0.0 if item["is_first_sample"] else 1.0 for item in items],
                        dtype=torch.float32).view(-1, 1, 1, 1)
    padded = torch.from_numpy(np.stack([item["is_padded_mask"] for item in items], axis=1))
    return {"inputs": frames, "labels": labels, "mask_keep_memory": keep,
            "frame_is_labeled": torch.from_numpy(labeled), "is_padded_mask": padded,
            "video_infos": tuple(item["info"] for item in items)}


def merge_rvt_batches(stream_batch: dict, random_batch: dict) -> dict:
    """RVT's mixed mode: stream rows first, then random rows (tensors concatenated along the
    batch axis, label lists joined); the worker id is the stream batch's."""
    a, b = stream_batch["data"], random_batch["data"]
    merged = {}
    for key, value in a.items():
        other = b[key]
        if isinstance(value, torch.Tensor):
            merged[key] = torch.cat([value, other])
        elif value and isinstance(value[0], torch.Tensor):
            merged[key] = [torch.cat([u, v]) for u, v in zip(value, other)]
        else:
            merged[key] = [SparselyBatchedObjectLabels(list(u) + list(v))
                           for u, v in zip(value, other)]
    return {"data": merged, "worker_id": stream_batch["worker_id"]}
