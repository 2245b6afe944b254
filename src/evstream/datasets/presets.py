"""Per-dataset settings in one table: sensor size, class names, the classes trained on, the
box filter of the protocol. Used by ``evstream evaluate --dataset`` and
``examples/train_public_dataset.py``; every field is plain data, replace what you need with
``dataclasses.replace``.

| preset | sensor (H x W) | classes | trained on | filter |
|---|---|---|---|---|
| gen1 | 240 x 304 | car, pedestrian | both | 30 / 10, t > 0.5 s |
| gen4 (1Mpx) | 720 x 1280 | 7 classes | pedestrian, two wheeler, car (RVT's) | 60 / 20, t > 0.5 s |
| etram | 720 x 1280 | 8 classes | remapped to 1Mpx's pedestrian, two wheeler, car (:data:`~evstream.datasets.classes.ETRAM_TO_GEN4`) | 60 / 20, t > 0.5 s (1Mpx's, same sensor size; a choice, not a published protocol) |
| dsec | 480 x 640 | 8 classes | pedestrian, car | none (no published filter) |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evstream.datasets.box_filter import GEN1_FILTER, GEN4_FILTER, PaperBoxFilter
from evstream.datasets.classes import (DSEC_CLASSES, ETRAM_CLASSES, ETRAM_TO_GEN4, GEN1_CLASSES,
                                       GEN4_CLASSES, class_lookup, compose_class_lookup)
from evstream.errors import ArgumentError


@dataclass(frozen=True)
class DatasetPreset:
    """One dataset's settings (see the module table)."""

    name: str
    sensor_hw: tuple[int, int]
    classes: tuple[str, ...]
    train_classes: tuple[str, ...]
    box_filter: PaperBoxFilter | None
    remap: Mapping[int, int | None] | None = None     # source ids -> ids of remap_classes
    remap_classes: tuple[str, ...] | None = None

    def training_lookup(self) -> np.ndarray:
        """``class_lookup`` for ``load_boxes``: the dataset's ids -> 1..K over
        ``train_classes`` (through ``remap`` when set)."""
        if self.remap is None:
            return class_lookup(self.classes, self.train_classes)
        return compose_class_lookup(self.remap, class_lookup(self.remap_classes,
                                                             self.train_classes))


PRESETS = {
    "gen1": DatasetPreset("gen1", (240, 304), GEN1_CLASSES, GEN1_CLASSES, GEN1_FILTER),
    "gen4": DatasetPreset("gen4", (720, 1280), GEN4_CLASSES, GEN4_CLASSES[:3], GEN4_FILTER),
    "etram": DatasetPreset("etram", (720, 1280), ETRAM_CLASSES, GEN4_CLASSES[:3], GEN4_FILTER,
                           ETRAM_TO_GEN4, GEN4_CLASSES),
    "dsec": DatasetPreset("dsec", (480, 640), DSEC_CLASSES, ("pedestrian", "car"), None),
}


def preset(name: str) -> DatasetPreset:
    """The preset called ``name`` (gen1, gen4, etram, dsec)."""
    if name not in PRESETS:
        raise ArgumentError(f"dataset must be one of {sorted(PRESETS)}, not {name!r}")
    return PRESETS[name]
