"""The public datasets' layouts end to end: small Gen1 / 1Mpx (RVT h5) / eTraM / DSEC-Detection
roots built with the project's DatWriter and h5py, listed by ``list_dataset`` and played by
every loader (SequentialDataLoader, CDProcessorDataLoader). Each HDF5 layout is checked
against the same events and boxes written as DAT + ``_bbox.npy``: the batches must be equal."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
from test_hdf5_event_arrays import write_event_arrays  # noqa: E402

from evstream.data import box_processing as box_api  # noqa: E402
from evstream.data.cd_processor_dataset import CDProcessorDataLoader  # noqa: E402
from evstream.data.sequential_dataset import SequentialDataLoader  # noqa: E402
from evstream.datasets import (DSEC_CLASSES, ETRAM_CLASSES, ETRAM_TO_GEN4, GEN1_FILTER,  # noqa: E402
                               GEN4_CLASSES, compose_class_lookup, label_file_path,
                               list_dataset, read_label_file, remap_class_ids, write_label_map)
from evstream.errors import EventArrayError, FileFormatError, MissingFileError  # noqa: E402
from evstream.io import DatWriter, EventBbox, EventCD  # noqa: E402

DURATION = 1_200_000


def events_for(width, height, n=60_000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, DURATION, n))
    ev["x"], ev["y"] = rng.integers(0, width, n), rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def boxes_for(width, height, n_classes, seed=0, track_ids=False):
    rng = np.random.default_rng(seed + 100)
    times = np.arange(100_000, DURATION, 50_000)
    b = np.zeros(3 * len(times), EventBbox)
    b["t"] = np.repeat(times, 3)
    b["w"] = rng.uniform(8, width / 3, len(b))
    b["h"] = rng.uniform(8, height / 3, len(b))
    b["x"] = rng.uniform(0, width - b["w"])
    b["y"] = rng.uniform(0, height - b["h"])
    b["class_id"] = rng.integers(0, n_classes, len(b))
    if track_ids:
        b["track_id"] = np.arange(len(b))
    return b


def write_dat(path, events, height, width):
    writer = DatWriter(path, height=height, width=width)
    writer.write(events)
    writer.close()


def build_roots(tmp_path):
    """Four dataset roots and, for each h5 recording, its DAT twin (same events as the loader
    must see them, same boxes on the events' clock)."""
    roots, twins = {}, {}
    # Gen1: DAT + _bbox.npy in train/ and val/
    gen1 = tmp_path / "gen1"
    for split, seed in (("train", 0), ("val", 1)):
        (gen1 / split).mkdir(parents=True)
        write_dat(gen1 / split / f"rec{seed}_td.dat", events_for(304, 240, seed=seed), 240, 304)
        np.save(gen1 / split / f"rec{seed}_bbox.npy", boxes_for(304, 240, 2, seed))
    roots["gen1"] = gen1
    # 1Mpx as RVT's h5: i8 times "not sorted everywhere", size stored; the DAT also present
    gen4 = tmp_path / "gen4" / "train"
    gen4.mkdir(parents=True)
    ev = events_for(1280, 720, seed=2)
    ev["t"][1000:1010] -= 5000
    write_event_arrays(gen4 / "moorea_td.h5", ev, "rvt", size=(720, 1280))
    repaired = ev.copy()
    repaired["t"] = np.maximum.accumulate(ev["t"])
    np.save(gen4 / "moorea_bbox.npy", boxes_for(1280, 720, 7, 2))
    twins["gen4"] = (gen4 / "moorea_td.h5", repaired, (720, 1280))
    roots["gen4"] = tmp_path / "gen4"
    # eTraM: h5 with a y = 33014 event, 8 classes
    etram = tmp_path / "etram" / "train"
    etram.mkdir(parents=True)
    ev = events_for(1280, 720, seed=3)
    ev["y"][[10, 20_000]] = 33014
    write_event_arrays(etram / "night_td.h5", ev, "etram", size=(720, 1280), compression="blosc")
    np.save(etram / "night_bbox.npy", boxes_for(1280, 720, 8, 3))
    twins["etram"] = (etram / "night_td.h5", ev[ev["y"] < 720], (720, 1280))
    roots["etram"] = tmp_path / "etram"
    # DSEC-Detection: events.h5 (u4 relative t, t_offset, ms_to_idx, blosc) + tracks.npy
    seq = tmp_path / "dsec" / "train" / "zurich_city_00_a"
    (seq / "events" / "left").mkdir(parents=True)
    (seq / "object_detections" / "left").mkdir(parents=True)
    ev = events_for(640, 480, seed=4)
    t_offset = 76_000_000_000
    write_event_arrays(seq / "events" / "left" / "events.h5", ev, "dsec", compression="blosc",
                       t_offset=t_offset)
    tracks = boxes_for(640, 480, 8, 4, track_ids=True)
    absolute = tracks.copy()
    absolute["t"] += t_offset
    np.save(seq / "object_detections" / "left" / "tracks.npy", absolute)
    twins["dsec"] = (seq / "events" / "left" / "events.h5", ev, (480, 640), tracks)
    roots["dsec"] = tmp_path / "dsec"
    return roots, twins


def dat_twin(tmp_path, name, twin):
    h5, events, (height, width), *rest = twin
    folder = tmp_path / "twins" / name
    folder.mkdir(parents=True)
    write_dat(folder / "rec_td.dat", events, height, width)
    labels = rest[0] if rest else np.load(label_file_path(h5))
    np.save(folder / "rec_bbox.npy", labels)
    return str(folder / "rec_td.dat")


def test_list_dataset_in_each_layout(tmp_path):
    roots, _ = build_roots(tmp_path)
    gen1 = list_dataset(roots["gen1"])
    assert gen1.layout == "side_by_side" and sorted(gen1.splits) == ["train", "val"]
    assert [os.path.basename(f) for f in gen1.files("train")] == ["rec0_td.dat"]
    assert gen1.label_files("val") == [str(roots["gen1"] / "val" / "rec1_bbox.npy")]
    dsec = list_dataset(roots["dsec"])
    assert dsec.layout == "dsec" and dsec.files("train")[0].endswith(
        os.path.join("zurich_city_00_a", "events", "left", "events.h5"))
    assert dsec.label_files("train")[0].endswith(os.path.join("left", "tracks.npy"))
    with pytest.raises(MissingFileError, match="'val'"):
        dsec.files("val")
    # 1Mpx ships both DAT and h5 for one label file: `prefer` picks one, nothing is lost
    train = roots["gen4"] / "train"
    write_dat(train / "moorea_td.dat", np.zeros(0, EventCD), 720, 1280)
    assert list_dataset(roots["gen4"]).splits["train"][0].format == "dat"
    assert list_dataset(roots["gen4"], prefer=("h5", "dat")).files("train") == \
        [str(train / "moorea_td.h5")]
    # unlabelled recordings and orphan labels are reported, not dropped silently
    write_dat(train / "lonely_td.dat", np.zeros(0, EventCD), 720, 1280)
    np.save(train / "ghost_bbox.npy", boxes_for(1280, 720, 2))
    with pytest.warns(UserWarning) as record:
        folder = list_dataset(roots["gen4"])
    messages = " ".join(str(w.message) for w in record)
    assert "1 recording(s) without a label file" in messages
    assert "1 label file(s) without a recording" in messages
    assert folder.unlabelled["train"] == [str(train / "lonely_td.dat")]
    assert folder.orphan_labels["train"] == [str(train / "ghost_bbox.npy")]
    with pytest.raises(MissingFileError, match="no split folder"):
        list_dataset(train)


def test_tracks_npy_is_on_the_events_clock(tmp_path):
    roots, twins = build_roots(tmp_path)
    h5, _, _, tracks = twins["dsec"]
    got = read_label_file(label_file_path(h5), h5)
    np.testing.assert_array_equal(got, tracks)
    assert got["track_id"].tolist() == list(range(len(tracks)))
    # without the recording the times stay absolute
    assert got["t"][0] + 76_000_000_000 == read_label_file(label_file_path(h5))["t"][0]
    # a tracks file straddling t_offset fits neither clock
    mixed = tracks.copy()
    mixed["t"][len(mixed) // 2:] += 76_000_000_000
    np.save(label_file_path(h5), mixed)
    with pytest.raises(FileFormatError, match="neither"):
        read_label_file(label_file_path(h5), h5)


def _batches(loader):
    out = []
    for batch in loader:
        labels = [[np.asarray(b).copy() for b in row] for row in batch["labels"]]
        out.append((batch["inputs"].clone(), labels, batch["frame_is_labeled"].clone(),
                    batch["mask_keep_memory"].clone()))
    return out


def _assert_same(a, b):
    assert len(a) == len(b) > 0
    labelled = 0
    for (ia, la, fa, ma), (ib, lb, fb, mb) in zip(a, b):
        torch.testing.assert_close(ia, ib, rtol=0, atol=0)
        assert torch.equal(torch.as_tensor(fa), torch.as_tensor(fb)) and torch.equal(ma, mb)
        for row_a, row_b in zip(la, lb):
            for x, y in zip(row_a, row_b):
                np.testing.assert_array_equal(x, y)
                labelled += len(x)
    return labelled


@pytest.mark.parametrize("name", ["gen4", "etram", "dsec"])
def test_sequential_loader_h5_equals_dat(tmp_path, name):
    roots, twins = build_roots(tmp_path)
    h5 = str(twins[name][0])
    dat = dat_twin(tmp_path, name, twins[name])
    height, width = twins[name][2]
    n_classes = {"gen4": len(GEN4_CLASSES), "etram": len(ETRAM_CLASSES),
                 "dsec": len(DSEC_CLASSES)}[name]
    lookup = np.arange(1, n_classes + 1)
    load = partial(box_api.load_boxes, class_lookup=lookup, box_filter=GEN1_FILTER)
    array_dim = [2, 2, height // 4, width // 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the unsorted / out-of-sensor warnings
        a = _batches(SequentialDataLoader([h5], 50_000, "histo", array_dim, load_labels=load,
                                          batch_size=1, num_workers=0))
    b = _batches(SequentialDataLoader([dat], 50_000, "histo", array_dim, load_labels=load,
                                      batch_size=1, num_workers=0))
    assert _assert_same(a, b) > 10
    assert all(float(x[0].sum()) >= 0 for x in a) and float(a[3][0].sum()) > 0


@pytest.mark.parametrize("name", ["gen4", "dsec"])
def test_stream_loader_h5_equals_dat(tmp_path, name):
    roots, twins = build_roots(tmp_path)
    h5 = str(twins[name][0])
    dat = dat_twin(tmp_path, name, twins[name])
    height, width = twins[name][2]
    load = partial(box_api.load_boxes, class_lookup=np.arange(1, 9))

    def loader(path):
        return CDProcessorDataLoader([path], mode="delta_t", delta_t=50_000, n_events=0,
                                     max_duration=None, preprocess_function_name="histo",
                                     num_tbins=2, batch_size=1, num_workers=0,
                                     height=height // 4, width=width // 4, load_labels=load)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _batches(loader(h5))
    assert _assert_same(a, _batches(loader(dat))) > 10


def test_gen1_folder_trains_with_the_paper_filter(tmp_path):
    roots, _ = build_roots(tmp_path)
    folder = list_dataset(roots["gen1"])
    label_map = write_label_map(tmp_path / "label_map_dictionary.json", ("car", "pedestrian"))
    lookup = box_api.create_class_lookup(label_map, ["car", "pedestrian"])
    load = partial(box_api.load_boxes, class_lookup=lookup, box_filter=GEN1_FILTER)
    loader = SequentialDataLoader(folder.files("train"), 50_000, "histo", [4, 2, 240, 304],
                                  load_labels=load, batch_size=1, num_workers=0)
    boxes = np.load(folder.label_files("train")[0])
    expected = GEN1_FILTER(boxes)
    expected = expected[expected["t"] <= len(loader) * 200_000]
    got = [b for batch in loader for row in batch["labels"] for b in row[0:1]]
    got = np.concatenate([np.asarray(g) for g in got if len(g)])
    # every kept label is a filtered one (split_boxes' per-bin NMS may merge overlaps)
    assert 0 < len(got) <= len(expected)
    assert np.all(got["t"] > 500_000)
    assert np.all(got["w"] ** 2 + got["h"] ** 2 >= 900 - 1e-3)


def test_class_tables_and_remaps(tmp_path):
    assert len(ETRAM_CLASSES) == len(DSEC_CLASSES) == 8 and len(GEN4_CLASSES) == 7
    gen4_map = write_label_map(tmp_path / "gen4.json", GEN4_CLASSES)
    lookup = box_api.create_class_lookup(gen4_map, ["pedestrian", "two wheeler", "car"])
    assert lookup.tolist() == [1, 2, 3, -1, -1, -1, -1]
    etram_lookup = compose_class_lookup(ETRAM_TO_GEN4, lookup)
    # pedestrian, car, bicycle, bus, motorbike, truck, tram, wheelchair
    assert etram_lookup.tolist() == [1, 3, 2, -1, 2, -1, -1, 1]
    b = np.zeros(8, EventBbox)
    b["class_id"] = np.arange(8)
    b["w"] = b["h"] = 10
    assert box_api.filter_boxes(b, etram_lookup)["class_id"].tolist() == [1, 3, 2, 2, 1]
    assert remap_class_ids(b, ETRAM_TO_GEN4)["class_id"].tolist() == [0, 2, 1, 1, 0]
    b["class_id"][0] = 9
    with pytest.raises(EventArrayError, match=r"\[9\]"):
        remap_class_ids(b, ETRAM_TO_GEN4)


def test_label_file_names():
    assert label_file_path("a/x_td.dat") == "a/x_bbox.npy"
    assert label_file_path("a/x_td.h5") == "a/x_bbox.npy"
    assert label_file_path("a/x_td.dat.h5") == "a/x_bbox.npy"
    assert label_file_path("a/x.h5") == "a/x_bbox.npy"
    assert label_file_path("a/x.raw") == "a/x_bbox.npy"
    assert label_file_path(os.path.join("r", "seq", "events", "left", "events.h5")) == \
        os.path.join("r", "seq", "object_detections", "left", "tracks.npy")
    assert box_api.box_file_path("a/x_td.h5") == "a/x_bbox.npy"


def test_presets_lookups_match_create_class_lookup(tmp_path):
    from evstream.datasets import PRESETS, class_lookup
    for name, p in PRESETS.items():
        if p.remap is None:
            path = write_label_map(tmp_path / f"{name}.json", p.classes)
            assert p.training_lookup().tolist() == \
                box_api.create_class_lookup(path, list(p.train_classes)).tolist(), name
    assert PRESETS["gen4"].training_lookup().tolist() == [1, 2, 3, -1, -1, -1, -1]
    assert PRESETS["etram"].training_lookup().tolist() == [1, 3, 2, -1, 2, -1, -1, 1]
    assert PRESETS["dsec"].training_lookup().tolist() == [1, -1, 2, -1, -1, -1, -1, -1]
    assert class_lookup(("a", "b", "c")).tolist() == [1, 2, 3]


@pytest.mark.parametrize("name", ["gen1", "dsec", "etram"])
def test_train_public_dataset_example_runs(tmp_path, name, capsys):
    import importlib.util
    roots, _ = build_roots(tmp_path)
    root = roots[name]
    if not (root / "val").exists():
        shutil.copytree(root / "train", root / "test")
    path = Path(__file__).parents[2] / "examples" / "train_public_dataset.py"
    spec = importlib.util.spec_from_file_location("train_public_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the whole held-out recording: load_boxes drops boxes of the first 0.5 s that sit
        # on (nearly) no events, as the original does, and these sparse recordings have few
        coco = module.main([name, str(root), "--steps", "2", "--num-workers", "0",
                            "--num-tbins", "4", "--downsample", "1" if name != "etram" else "4"])
    out = capsys.readouterr().out
    assert "COCO on" in out and "AP_50" in out and 0 <= coco["AP"] <= 1
    assert " 0 boxes" not in out
