"""The same boxes land in the same bins through every loader path.

One recording (DAT and RAW EVT 2.0, the same events), its tensor file and its tensor file split
every 200 ms (``evstream precompute``'s writer, labels split alongside), played by
``SequentialDataLoader`` and ``CDProcessorDataLoader`` with ``load_boxes``. Boxes sit on every bin
edge ``k·dt`` and 1 µs on either side. The reference is the label rule written out by hand: a box
at ``t`` belongs to the bin ``(j·dt, (j+1)·dt]``, i.e. ``j = ceil(t / dt) - 1``.
"""

from __future__ import annotations

import json
import os
from functools import partial

import numpy as np
import pytest

from evstream.data import CDProcessorDataLoader, SequentialDataLoader
from evstream.data.box_processing import create_class_lookup, load_boxes
from evstream.io import DatWriter, EventBbox, EventCD, RawWriter
from evstream.preprocessing.hdf5 import generate_hdf5

H, W = 48, 64
DT = 10_000                  # bin, µs
T = 5                        # bins per chunk
SPLIT = 200_000              # precompute split, µs (4 chunks)
END = 1_000_000              # events in [0, END)


def _boxes() -> np.ndarray:
    times = sorted({t for k in range(1, END // DT + 1) for t in (k * DT - 1, k * DT, k * DT + 1)
                    if 0 < t <= END})
    boxes = np.zeros(len(times), EventBbox)
    boxes["t"] = times
    boxes["x"] = np.arange(len(times)) % 4 * 15 + 1      # 4 places: no two overlap in a bin
    boxes["y"] = 10
    boxes["w"] = boxes["h"] = 10
    boxes["class_id"] = 0
    boxes["track_id"] = np.arange(len(times))
    return boxes


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edges")
    rng = np.random.default_rng(5)
    n = 200 * END // 1000             # 200 events per ms: no box sits on too few events
    events = np.zeros(n, EventCD)
    events["t"] = np.sort(rng.integers(0, END, n))
    events["t"][0] = 0                                    # RAW time shifting moves nothing
    events["x"], events["y"] = rng.integers(0, W, n), rng.integers(0, H, n)
    events["p"] = rng.integers(0, 2, n)
    boxes = _boxes()
    paths = {}
    for name, kind in (("dat", "dat"), ("raw", "raw")):
        sub = folder / name
        sub.mkdir()
        path = sub / f"rec.{kind}"
        if kind == "dat":
            with DatWriter(os.fspath(path), height=H, width=W) as w:
                w.write(events)
        else:
            with RawWriter(os.fspath(path), H, W, "evt2") as w:
                w.write(events)
        np.save(sub / "rec_bbox.npy", boxes)
        paths[name] = [os.fspath(path)]
    box_file = os.fspath(folder / "dat" / "rec_bbox.npy")
    generate_hdf5([paths["dat"][0]], os.fspath(folder / "h5"), "histo", DT, n_processes=1,
                  box_labels=[box_file])
    paths["h5"] = [os.fspath(folder / "h5" / "rec.h5")]
    generate_hdf5([paths["dat"][0]], os.fspath(folder / "split"), "histo", DT, n_processes=1,
                  box_labels=[box_file], max_duration=SPLIT)
    paths["split"] = sorted(os.fspath(folder / "split" / f) for f in os.listdir(folder / "split")
                            if f.endswith(".h5"))
    label_map = folder / "label_map.json"
    label_map.write_text(json.dumps({"0": "car"}))
    lookup = create_class_lookup(label_map, ["car"])
    return paths, boxes, partial(load_boxes, class_lookup=lookup)


def _file_offset(path: str) -> int:
    """Where a split tensor file starts in the recording (µs)."""
    stem = os.path.basename(path).split(".")[0]
    return int(stem.rsplit("_", 1)[1]) * SPLIT if stem != "rec" else 0


def _seen(loader) -> tuple[dict, set]:
    """track id -> recording bin index, and the recording bins the loader covered."""
    seen, covered = {}, set()
    for batch in loader:
        for i, (meta, start, duration) in enumerate(batch["video_infos"]):
            if meta.is_padding() or duration == 0:
                continue
            first = (_file_offset(meta.path) + start) // DT
            assert duration == T * DT
            covered.update(range(first, first + T))
            for b in range(T):
                for track in batch["labels"][b][i]["track_id"].tolist():
                    assert track not in seen, f"box {track} in two bins"
                    seen[track] = first + b
    return seen, covered


def _expected(boxes, covered) -> dict:
    bins = -(-boxes["t"].astype(np.int64) // DT) - 1
    return {int(k): int(b) for k, b in zip(boxes["track_id"], bins) if b in covered}


@pytest.mark.parametrize("kind", ["dat", "raw", "h5", "split"])
def test_sequential_loader_puts_edge_boxes_in_their_bins(dataset, kind):
    paths, boxes, load_labels = dataset
    loader = SequentialDataLoader(paths[kind], DT, "histo", [T, 2, H, W], load_labels=load_labels,
                                  batch_size=1, num_workers=0)
    seen, covered = _seen(loader)
    assert len(covered) >= 0.9 * END // DT
    assert seen == _expected(boxes, covered)


@pytest.mark.parametrize("kind", ["dat", "raw", "h5", "split"])
def test_streaming_loader_puts_edge_boxes_in_their_bins(dataset, kind):
    paths, boxes, load_labels = dataset
    loader = CDProcessorDataLoader(paths[kind], "delta_t", DT, 0, None, "histo", T, 1,
                                   num_workers=0, load_labels=load_labels)
    seen, covered = _seen(loader)
    assert len(covered) >= 0.9 * END // DT
    assert seen == _expected(boxes, covered)
