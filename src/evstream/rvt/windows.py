"""Where RVT's windows end, and which window carries which label frame.

Given the label frames ``f_0 < ... < f_{M-1}`` and the counts ``c_i`` of
:func:`evstream.rvt.labels.label_frames` (``n_i = 2 c_i``, ``Δ = 50 000`` µs), the window end
times ``T`` are, in this order:

* before the first frame: ``f_0 - kΔ`` for ``k >= 1`` while ``f_0 - kΔ > Δ``, increasing (the
  earliest candidate whose window would start at or before 0 is left out);
* between frames ``i`` and ``i + 1``: ``trunc(fl64(fl64(j * s_i) + f_i))`` for ``j < n_i`` with
  ``s_i = fl64(f_{i+1} - f_i) / n_i`` (a float64 linspace truncated to int64);
* the last frame ``f_{M-1}``; nothing after it.

``objframe_idx_2_repr_idx[i]`` is the index of ``f_i`` in ``T``. Gen1 (B = 250 ms) thus gets ends
125 ms apart between frames (each 50 ms window leaves 75 ms of events unused, an RVT quirk
reproduced), gen4 (B about 100 ms) about 50 ms apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evstream.errors import ArgumentError, RvtRuleError
from evstream.rvt.config import FRAME_STEP_US, WINDOW_STEP_US
from evstream.rvt.labels import FrameLabels


def window_ends(frames: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The window end times ``T`` (int64, increasing) for label frames and gap counts."""
    frames = np.asarray(frames, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    step = WINDOW_STEP_US
    f0 = int(frames[0])
    k_max = -(-f0 // step) - 2                      # ceil(f0 / step) - 2 ends before f0
    before = [f0 - k * step for k in range(max(k_max, 0), 0, -1)]
    parts = [np.asarray(before, dtype=np.int64)]
    per_frame = FRAME_STEP_US // step
    for i in range(len(frames) - 1):
        n = int(counts[i]) * per_frame
        s = float(frames[i + 1] - frames[i]) / n
        parts.append((np.arange(n, dtype=np.float64) * s + float(frames[i])).astype(np.int64))
    parts.append(frames[-1:])
    return np.concatenate(parts)


def repr_index_of_frames(ends: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``objframe_idx_2_repr_idx``: the index of each frame time in ``ends`` (int64)."""
    idx = np.searchsorted(ends, frames, side="left")
    if np.any(idx >= len(ends)) or np.any(ends[np.minimum(idx, len(ends) - 1)] != frames):
        raise RvtRuleError("a label frame is not a window end (RVT asserts an exact hit)")
    return idx.astype(np.int64)


@dataclass
class SequencePlan:
    """Everything RVT's preprocessing decides for one sequence before reading any event.

    Attributes:
        labels: the label frames and their boxes (``labels_v2``).
        ends: window end times, int64 (N,) (the representation's ``timestamps_us.npy``).
        repr_index: ``objframe_idx_2_repr_idx``, int64 (M,).
    """

    labels: FrameLabels
    ends: np.ndarray
    repr_index: np.ndarray

    @property
    def num_windows(self) -> int:
        return len(self.ends)

    def check_range(self, first: int, last: int | None, path: str) -> int:
        """``last`` (None: the end), after checking ``0 <= first <= last <= N``; else an
        :class:`~evstream.errors.ArgumentError` naming ``path``."""
        last = self.num_windows if last is None else int(last)
        if not 0 <= int(first) <= last <= self.num_windows:
            raise ArgumentError(f"windows [{first}, {last}) outside the sequence's "
                                f"{self.num_windows} windows", path)
        return last


def plan_sequence(labels: FrameLabels) -> SequencePlan:
    """The windows of a sequence whose label frames are ``labels``."""
    ends = window_ends(labels.frames, labels.counts)
    return SequencePlan(labels, ends, repr_index_of_frames(ends, labels.frames))
