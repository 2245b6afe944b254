"""evstream.synth datasets on disk: layout, label map, writers, determinism, CLI."""

import json
import os

import numpy as np
import pytest

from evstream.errors import ArgumentError
from evstream.io import EventBbox, EventDatReader, RawReader, load_events
from evstream.synth import (SceneConfig, label_map, make_dataset, parse_formats, simulate,
                            split_counts)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    ds = make_dataset(root, recordings=4, duration_s=0.6, height=240, width=304,
                      format="evt3+dat", seed=3, label_rate_hz=20)
    return root, ds


def test_layout_follows_the_tutorial(dataset):
    root, ds = dataset
    assert sorted(os.listdir(root)) == ["label_map_dictionary.json", "synth_info.json", "test",
                                        "train", "val"]
    assert [r.split for r in ds.recordings] == ["train", "train", "val", "test"]
    for r in ds.recordings:
        folder = os.path.join(root, r.split)
        assert r.paths == [os.path.join(folder, r.name + ".raw"),
                           os.path.join(folder, r.name + "_td.dat")]
        assert r.bbox_path == os.path.join(folder, r.name + "_bbox.npy")
        assert all(os.path.isfile(p) for p in r.paths + [r.bbox_path])
    assert sorted(ds.files) == sorted({ds.label_map, ds.info, *[p for r in ds.recordings
                                                                for p in r.paths + [r.bbox_path]]})
    assert ds.splits["val"] == ds.recordings[2].paths
    info = json.load(open(ds.info))
    assert info["seed"] == 3 and len(info["recordings"]) == 4


def test_label_map_works_with_the_tutorial_keys(dataset):
    _, ds = dataset
    lm = json.load(open(ds.label_map))
    assert lm == {"0": "car", "1": "pedestrian", "2": "two wheeler", "3": "empty"}
    from evstream.data.box_processing import create_class_lookup

    lookup = create_class_lookup(ds.label_map, ["car", "pedestrian", "two wheeler"])
    assert lookup.tolist() == [1, 2, 3, -1]


def test_box_files(dataset):
    _, ds = dataset
    for r in ds.recordings:
        boxes = np.load(r.bbox_path)
        assert boxes.dtype == EventBbox
        times = np.unique(boxes["t"])
        assert times.tolist() == list(range(50_000, 600_000, 50_000))   # every labelled frame
        empty = boxes["class_id"] == 3
        assert r.empty_times == int(empty.sum()) and r.boxes == int((~empty).sum())
        # an empty-class row only where nothing else is labelled
        for t in boxes["t"][empty]:
            assert np.sum(boxes["t"] == t) == 1


def test_recordings_decode_identically_and_need_no_time_shift(dataset):
    _, ds = dataset
    for r in ds.recordings:
        raw = load_events(r.paths[0])
        dat = EventDatReader(r.paths[1]).load_n_events(10 ** 9)
        assert len(raw) == r.events > 0
        assert np.array_equal(raw, dat)
        assert 4096 <= raw["t"][0] < 8192          # EVT 3.0: origin of the time shift is 0
        shifted = RawReader(r.paths[0]).load_n_events(10 ** 9)
        assert np.array_equal(shifted["t"], raw["t"])
        assert raw["t"][-1] < 600_000


def test_same_as_in_memory_simulation(dataset):
    _, ds = dataset
    r = ds.recordings[1]
    ev, boxes = simulate(240, 304, 600_000, seed=3, index=1, label_rate_hz=20)
    raw = load_events(r.paths[0])
    assert np.array_equal(boxes, np.load(r.bbox_path))
    kept = ev[ev["t"] >= 4096]            # the EVT 3.0 start window drops the first 4096 us
    if kept["t"][0] >= 8192:              # ... and adds one event at 4096 if none comes soon
        assert raw["t"][0] == 4096
        raw = raw[1:]
    assert np.array_equal(kept, raw)


def test_deterministic_and_independent_of_the_count(tmp_path):
    a = make_dataset(tmp_path / "a", recordings=1, duration_s=0.3, height=240, width=304,
                     format="evt2", seed=9, splits={"train": 1})
    b = make_dataset(tmp_path / "b", recordings=2, duration_s=0.3, height=240, width=304,
                     format="evt2", seed=9, splits={"train": 1})
    ra, rb = a.recordings[0], b.recordings[0]
    ev_a, ev_b = load_events(ra.paths[0]), load_events(rb.paths[0])
    assert np.array_equal(ev_a, ev_b)
    assert np.array_equal(np.load(ra.bbox_path), np.load(rb.bbox_path))
    assert ev_a["t"][0] < 64                         # EVT 2.0: origin of the time shift is 0
    assert np.array_equal(RawReader(ra.paths[0]).load_n_events(10 ** 9)["t"], ev_a["t"])
    assert not np.array_equal(load_events(b.recordings[1].paths[0])[:100], ev_a[:100])


def test_dat_only_and_label_rate(tmp_path):
    ds = make_dataset(tmp_path, recordings=1, duration_s=0.25, height=240, width=304,
                      format="dat", seed=1, label_rate_hz=60, splits="train=1")
    r = ds.recordings[0]
    assert r.paths == [str(tmp_path / "train" / "rec_0000_td.dat")]
    t = np.unique(np.load(r.bbox_path)["t"])
    assert t.tolist() == [round(k * 1e6 / 60) for k in range(1, 15)]


def test_split_counts():
    w = {"train": 0.6, "val": 0.2, "test": 0.2}
    assert split_counts(1, w) == {"train": 1, "val": 0, "test": 0}
    assert split_counts(3, w) == {"train": 1, "val": 1, "test": 1}
    assert split_counts(10, w) == {"train": 6, "val": 2, "test": 2}
    assert split_counts(4, {"train": 1, "val": 0}) == {"train": 4, "val": 0}


def test_bad_arguments(tmp_path):
    with pytest.raises(ArgumentError):
        parse_formats("evt3+evt2")
    with pytest.raises(ArgumentError):
        parse_formats("hdf5")
    assert parse_formats("EVT3+dat") == ("evt3", "dat")
    for kwargs in ({"recordings": 0}, {"duration_s": 0}, {"height": 10},
                   {"label_rate_hz": 0}, {"splits": "train"}, {"splits": {"train": 0}}):
        with pytest.raises(ArgumentError):
            make_dataset(tmp_path, **kwargs)
    with pytest.raises(ArgumentError):
        label_map(SceneConfig(classes=()))


def test_cli_synth(tmp_path, capsys):
    from evstream.cli import main

    out = tmp_path / "ds"
    rc = main(["synth", str(out), "--recordings", "2", "--duration-s", "0.3", "--size", "304x240",
               "--format", "evt2+dat", "--seed", "1", "--splits", "train=1,val=1",
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "rec_0000.raw" in text and "rec_0001.raw" in text
    assert (out / "train" / "rec_0000.raw").is_file()
    assert (out / "val" / "rec_0001_td.dat").is_file()
    assert (out / "label_map_dictionary.json").is_file()
    assert tuple(RawReader(str(out / "train" / "rec_0000.raw")).get_size()) == (240, 304)
    with pytest.raises(SystemExit):
        main(["synth", str(out), "--size", "wide"])
    assert main(["synth", str(out), "--format", "mp4", "--no-progress"]) == 1
