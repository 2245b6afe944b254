"""Class tables of the public datasets and the remaps between them.

Class ids are the values of the box arrays' ``class_id`` field (0-based, in the order below).
Training code maps them to 1..K with a *lookup* (``lookup[class_id]``: 1..K, or -1 to drop), the
array :func:`evstream.data.box_processing.create_class_lookup` builds from a label map and that
``load_boxes(..., class_lookup=...)`` takes. A *remap* is a dict ``{source id: target id or
None}`` between two datasets' ids; :func:`compose_class_lookup` turns a remap and a lookup of
the target dataset into a lookup over the source ids. Every table here is a plain dict or tuple:
pass your own to replace it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from evstream.errors import ArgumentError, EventArrayError

#: Gen1 automotive (ATIS 304x240).
GEN1_CLASSES = ("car", "pedestrian")
#: 1Mpx / Gen4 automotive (1280x720); RVT trains and evaluates on ids 0-2.
GEN4_CLASSES = ("pedestrian", "two wheeler", "car", "truck", "bus", "traffic sign",
                "traffic light")
#: eTraM (EVK4 HD 1280x720).
ETRAM_CLASSES = ("pedestrian", "car", "bicycle", "bus", "motorbike", "truck", "tram",
                 "wheelchair")
#: DSEC-Detection (640x480).
DSEC_CLASSES = ("pedestrian", "rider", "car", "bus", "truck", "bicycle", "motorcycle", "train")

#: eTraM -> 1Mpx ids, following eTraM's own ``gen4_class_labels`` choice: pedestrian and
#: wheelchair -> pedestrian (0), bicycle and motorbike -> two wheeler (1), car -> car (2); bus,
#: truck and tram are dropped (None). :data:`ETRAM_TO_GEN4_HEAVY_AS_CAR` maps them to car.
ETRAM_TO_GEN4 = {0: 0, 1: 2, 2: 1, 3: None, 4: 1, 5: None, 6: None, 7: 0}
#: The other experiment: bus, truck and tram -> car (2).
ETRAM_TO_GEN4_HEAVY_AS_CAR = {**ETRAM_TO_GEN4, 3: 2, 5: 2, 6: 2}


def label_map(classes: Sequence[str]) -> dict[str, str]:
    """``{"0": name0, "1": name1, ...}``: the ``label_map_dictionary.json`` content."""
    return {str(i): name for i, name in enumerate(classes)}


def write_label_map(path: str | os.PathLike, classes: Sequence[str]) -> str:
    """Write ``label_map_dictionary.json`` for ``classes`` (ids in order); returns the path.
    Feed it to ``create_class_lookup``."""
    path = os.fspath(path)
    with open(path, "w") as f:
        json.dump(label_map(classes), f, indent=1)
    return path


def _check_remap(remap: Mapping) -> None:
    for source, target in remap.items():
        if int(source) < 0 or (target is not None and int(target) < 0):
            raise ArgumentError(f"class remap entries must be ids >= 0 (or None), got "
                                f"{source}: {target}")


def compose_class_lookup(remap: Mapping[int, int | None], target_lookup) -> np.ndarray:
    """A lookup over the source ids of ``remap``: ``target_lookup[remap[i]]``, or -1 where
    ``remap[i]`` is None, missing, or outside ``target_lookup``. Example: eTraM boxes trained
    with 1Mpx's pedestrian / two wheeler / car::

        lookup = create_class_lookup(gen4_label_map, ["pedestrian", "two wheeler", "car"])
        load_boxes(..., class_lookup=compose_class_lookup(ETRAM_TO_GEN4, lookup))
    """
    _check_remap(remap)
    target_lookup = np.asarray(target_lookup, dtype=np.int64)
    size = max((int(k) for k in remap), default=-1) + 1
    out = np.full(size, -1, dtype=np.int64)
    for source, target in remap.items():
        if target is not None and int(target) < len(target_lookup):
            out[int(source)] = target_lookup[int(target)]
    return out


def remap_class_ids(boxes: np.ndarray, remap: Mapping[int, int | None]) -> np.ndarray:
    """A copy of ``boxes`` with ``class_id`` mapped through ``remap``; boxes whose class maps
    to None are dropped. A class id missing from ``remap`` raises
    :class:`~evstream.errors.EventArrayError` (an incomplete table would drop data silently)."""
    _check_remap(remap)
    ids = np.asarray(boxes["class_id"], dtype=np.int64)
    unknown = sorted(set(np.unique(ids).tolist()) - {int(k) for k in remap})
    if unknown:
        raise EventArrayError(f"class ids {unknown} are not in the remap table {dict(remap)}")
    table = np.full(max(int(k) for k in remap) + 1 if remap else 0, -1, dtype=np.int64)
    for source, target in remap.items():
        table[int(source)] = -1 if target is None else int(target)
    mapped = table[ids] if len(ids) else ids
    out = boxes[mapped >= 0].copy()
    out["class_id"] = mapped[mapped >= 0]
    return out


def class_lookup(classes: Sequence[str], wanted: Sequence[str] = ()) -> np.ndarray:
    """The lookup ``create_class_lookup`` builds from a label map of ``classes``, without the
    file: ``lookup[id] = 1 + position of classes[id] in wanted`` (-1 when not wanted; every
    class, in order, when ``wanted`` is empty)."""
    wanted = list(wanted) or [c for c in classes if c != "empty"]
    unknown = [w for w in wanted if w not in classes]
    if unknown:
        raise ArgumentError(f"wanted classes {unknown} are not in {list(classes)}")
    return np.array([1 + wanted.index(c) if c in wanted else -1 for c in classes],
                    dtype=np.int64)
