"""RVT's samples: which windows and labels a training or evaluation sample holds.

A sample is ``L`` consecutive windows ``[start, start + L)`` of one sequence; a window that is a
label frame's (``objframe_idx_2_repr_idx[i] == k``) carries that frame's boxes, every other
window carries None.

* **Random access** (:func:`random_sample_windows`): one sample per label frame ``i`` whose
  window index is ``>= L - 1``; its windows end at that frame:
  ``[repr[i] + 1 - L, repr[i] + 1)``. Every labelled step in it carries labels (RVT's
  ``only_load_end_labels`` is False).
* **Streaming** (:func:`stream_ranges`, :func:`cut_range`): training ("guaranteed labels") splits
  ``objframe_idx_2_repr_idx`` wherever two consecutive entries differ by more than L, and a
  group with first and last window indices ``a`` and ``b`` becomes the range
  ``[max(a - L + 1, 0), b + 1)``; evaluation uses one range per sequence,
  ``[max(repr[0] - L + 1, 0), N)``. A range is cut into samples at ``s, s + L, ...``; the last may
  be shorter and is padded to L with zero frames, no labels and ``is_padded_mask`` True.
  ``is_first_sample`` is True only for the first sample of a range.

Labels at load time (:func:`training_labels`, RVT's loader): columns ``t, x, y, w, h,
class_id, class_confidence`` as float32 (so times above 2^24 µs are rounded, as in RVT); the
boxes are clamped to the full frame with the preprocessing's crop rule, and for gen4 scaled by
1/2 into the 360 x 640 frame (``x1 = min((x + w) / 2, W/2 - 1)``), dropping boxes that become
flat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evstream.errors import RvtRuleError
from evstream.rvt.config import RvtDataset

#: Column order of RVT's per-frame label tensor.
LABEL_COLUMNS = ("t", "x", "y", "w", "h", "class_id", "class_confidence")


@dataclass(frozen=True)
class SampleWindows:
    """Windows ``[start, stop)`` of sequence ``sequence`` padded to ``length`` steps;
    ``first`` is RVT's ``is_first_sample``; ``chunk`` numbers the streaming range it belongs to
    (its augmentation is drawn once per chunk), -1 for random-access samples."""

    sequence: int
    start: int
    stop: int
    length: int
    first: bool
    chunk: int = -1

    @property
    def padded_steps(self) -> int:
        return self.length - (self.stop - self.start)


def random_sample_windows(repr_index: np.ndarray, length: int, sequence: int = 0
                          ) -> list[SampleWindows]:
    """RVT's random-access samples of one sequence (module docstring)."""
    repr_index = np.asarray(repr_index, dtype=np.int64)
    offset = next((i for i, k in enumerate(repr_index) if k >= length - 1), len(repr_index))
    return [SampleWindows(sequence, int(k) + 1 - length, int(k) + 1, length, True)
            for k in repr_index[offset:]]


def stream_ranges(repr_index: np.ndarray, num_windows: int, length: int, train: bool
                  ) -> list[tuple[int, int]]:
    """RVT's streaming ranges ``[s, e)`` of one sequence (module docstring)."""
    repr_index = np.asarray(repr_index, dtype=np.int64)
    if not train:
        return [(max(int(repr_index[0]) - length + 1, 0), int(num_windows))]
    cuts = np.flatnonzero(np.diff(repr_index) > length) + 1
    groups = np.split(repr_index, cuts)
    return [(max(int(g[0]) - length + 1, 0), int(g[-1]) + 1) for g in groups]


def cut_range(start: int, stop: int, length: int, sequence: int = 0, chunk: int = -1
              ) -> list[SampleWindows]:
    """The samples of one streaming range, ``L`` windows each (the last may be shorter)."""
    return [SampleWindows(sequence, s, min(s + length, stop), length, s == start, chunk)
            for s in range(start, stop, length)]


def training_labels(boxes: np.ndarray, dataset: RvtDataset) -> np.ndarray:
    """RVT's loader labels of one frame: float32 ``(n, 7)`` (module docstring)."""
    table = np.stack([boxes[c].astype(np.float32) for c in LABEL_COLUMNS], axis=1) \
        if len(boxes) else np.zeros((0, 7), np.float32)
    f32 = np.float32
    h_full, w_full = f32(dataset.height), f32(dataset.width)
    x, y, w, h = table[:, 1], table[:, 2], table[:, 3], table[:, 4]
    x1 = np.clip(x + w, f32(0), w_full - 1)
    y1 = np.clip(y + h, f32(0), h_full - 1)
    x0 = np.clip(x, f32(0), w_full - 1)
    y0 = np.clip(y, f32(0), h_full - 1)
    table[:, 1], table[:, 2], table[:, 3], table[:, 4] = x0, y0, x1 - x0, y1 - y0
    if np.any(table[:, 3] <= 0) or np.any(table[:, 4] <= 0):
        raise RvtRuleError("a stored box is flat after clamping (RVT's loader asserts w, h > 0)")
    if dataset.downsample_by_2:
        table = scale_labels(table, 0.5, (h_full, w_full))
    return table


def scale_labels(table: np.ndarray, factor: float, input_hw: tuple[float, float]) -> np.ndarray:
    """RVT's box rescaling: the frame ``input_hw`` becomes ``input_hw * factor``;
    ``x1 = min((x + w) f, W f - 1)`` (same for y), ``x *= f``, ``w = x1 - x``; flat boxes dropped."""
    f = np.float32(factor)
    h_new, w_new = np.float32(input_hw[0]) * f, np.float32(input_hw[1]) * f
    out = table.copy()
    x1 = np.minimum((table[:, 1] + table[:, 3]) * f, w_new - 1)
    y1 = np.minimum((table[:, 2] + table[:, 4]) * f, h_new - 1)
    out[:, 1] = table[:, 1] * f
    out[:, 2] = table[:, 2] * f
    out[:, 3] = x1 - out[:, 1]
    out[:, 4] = y1 - out[:, 2]
    return out[(out[:, 3] > 0) & (out[:, 4] > 0)]
