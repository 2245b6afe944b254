"""The paper protocol's box filter (the Prophesee automotive toolbox's evaluator, used by RVT
and its successors).

A box is kept when

* ``t > skip_ts`` (strict: the first ``skip_ts`` µs of a recording, 500,000 by default, are not
  evaluated),
* ``w² + h² >= min_box_diag²``, and
* ``w >= min_box_side`` and ``h >= min_box_side``.

``w`` and ``h`` are the float32 fields of the box arrays, and every product, sum and comparison
is made in float32, as the reference evaluator does: a box ``(20, 56.568542)`` passes a
diagonal of 60 in float32 (``w² + h²`` rounds to exactly 3600) and fails in float64
(3599.99997...).

Presets: Gen1 30 / 10, 1Mpx (Gen4) 60 / 20; boxes in 2x-downsampled coordinates (1Mpx evaluated at
640x360) use :meth:`PaperBoxFilter.halved`. The same object filters training labels
(``load_boxes(..., box_filter=...)``) and evaluation inputs (:mod:`evstream.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evstream.errors import ArgumentError, EventArrayError

#: Boxes at or before this time (µs) are skipped by default.
DEFAULT_SKIP_TS = 500_000


@dataclass(frozen=True)
class PaperBoxFilter:
    """Keep boxes with ``t > skip_ts``, diagonal ``>= min_box_diag`` and both sides ``>=
    min_box_side`` (pixels of the boxes' own coordinates, float32 comparisons).

    Calling it on an EventBbox-like array (fields ``t``, ``w``, ``h``) returns the kept rows
    (a new array); :meth:`mask` returns the boolean mask.
    """

    min_box_diag: float = 0.0
    min_box_side: float = 0.0
    skip_ts: int = DEFAULT_SKIP_TS

    def __post_init__(self):
        if self.min_box_diag < 0 or self.min_box_side < 0:
            raise ArgumentError(f"min_box_diag and min_box_side must be >= 0, got "
                                f"{self.min_box_diag}, {self.min_box_side}")

    def mask(self, boxes: np.ndarray) -> np.ndarray:
        """Boolean mask of the boxes kept."""
        names = getattr(boxes.dtype, "names", None) or ()
        missing = [k for k in ("t", "w", "h") if k not in names]
        if missing:
            raise EventArrayError(f"boxes need fields t, w, h; missing {missing} in {boxes.dtype}")
        w = np.asarray(boxes["w"], dtype=np.float32)
        h = np.asarray(boxes["h"], dtype=np.float32)
        diag = np.float32(self.min_box_diag)
        side = np.float32(self.min_box_side)
        keep = (w * w + h * h >= diag * diag) & (w >= side) & (h >= side)
        return keep & (np.asarray(boxes["t"]) > self.skip_ts)

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        return boxes[self.mask(boxes)]

    def halved(self) -> "PaperBoxFilter":
        """The same filter for boxes in 2x-downsampled coordinates (sizes / 2, same skip)."""
        return PaperBoxFilter(self.min_box_diag / 2, self.min_box_side / 2, self.skip_ts)


#: Gen1 (ATIS 304x240): diagonal 30, side 10, skip 0.5 s.
GEN1_FILTER = PaperBoxFilter(30, 10, DEFAULT_SKIP_TS)
#: 1Mpx / Gen4 (1280x720): diagonal 60, side 20, skip 0.5 s (``.halved()`` at 640x360).
GEN4_FILTER = PaperBoxFilter(60, 20, DEFAULT_SKIP_TS)
