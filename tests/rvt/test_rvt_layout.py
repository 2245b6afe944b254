"""RVT's layout written from DAT recordings (``precompute --layout rvt``) and read back."""

import os
import zipfile

import h5py
import numpy as np
import pytest

from evstream.cli import main
from evstream.errors import MissingFileError, RvtRuleError
from evstream.rvt.config import GEN1, GEN4
from evstream.rvt.labels import frame_labels
from evstream.rvt.layout_reader import LayoutSequence, layout_sequences
from evstream.rvt.layout_writer import precompute_rvt, write_sequence
from evstream.rvt.sequence import RecordingSequence, find_sequences, recording_sequences
from evstream.rvt.windows import plan_sequence
from rvt_data import boxes, make_gen1_dataset, make_gen4_dataset, write_dat, random_events
from rvt_reference import frames_reference, read_dat_whole

REP = "stacked_histogram_dt=50_nbins=10"


@pytest.fixture(scope="module")
def gen1(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen1")
    make_gen1_dataset(root / "in")
    results = precompute_rvt(root / "in", root / "out", "gen1")
    return root, results


def test_tree_and_files(gen1):
    root, results = gen1
    assert sorted((r.split, r.name, r.status) for r in results) == \
        [("train", "a", "written"), ("train", "b", "written"), ("val", "c", "written")]
    assert sorted(os.listdir(root / "out")) == ["test", "train", "val"]
    seq = root / "out" / "train" / "a"
    assert sorted(os.listdir(seq / "labels_v2")) == ["labels.npz", "timestamps_us.npy"]
    assert sorted(os.listdir(seq / "event_representations_v2" / REP)) == \
        ["event_representations.h5", "objframe_idx_2_repr_idx.npy", "timestamps_us.npy"]
    rep = seq / "event_representations_v2" / REP
    ends = np.load(rep / "timestamps_us.npy")
    # boxes at 50 ms (before 100 ms: unused), 250, 500, ..., 1250 ms
    assert ends.dtype == np.int64 and ends.tolist() == \
        [100_000, 150_000, 200_000, 250_000, 375_000, 500_000, 625_000, 750_000, 875_000,
         1_000_000, 1_125_000, 1_250_000]
    assert np.load(rep / "objframe_idx_2_repr_idx.npy").tolist() == [3, 5, 7, 9, 11]
    assert np.load(seq / "labels_v2" / "timestamps_us.npy").tolist() == \
        [250_000, 500_000, 750_000, 1_000_000, 1_250_000]
    with np.load(seq / "labels_v2" / "labels.npz") as z:
        assert sorted(z.files) == ["labels", "objframe_idx_2_label_idx"]
        assert z["labels"].dtype.itemsize == 36 and z["labels"]["t"].tolist()[0] == 250_000
        assert z["objframe_idx_2_label_idx"].tolist() == [0, 1, 2, 3, 4]
    with zipfile.ZipFile(seq / "labels_v2" / "labels.npz") as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    with h5py.File(rep / "event_representations.h5") as f:
        assert list(f) == ["data"] and not dict(f.attrs) and not dict(f["data"].attrs)
        d = f["data"]
        assert d.dtype == np.uint8 and d.shape == (12, 20, 240, 304)
        assert d.chunks == (1, 20, 240, 304) and d.maxshape == (None, 20, 240, 304)
        assert d._filters == {"32001": (2, 2, 1, 1_459_200, 1, 1, 5)}


def test_frames_equal_numpy_reference_gen1(gen1):
    root, _ = gen1
    x, y, p, t = read_dat_whole(root / "in" / "train" / "a_td.dat")
    seq = LayoutSequence(root / "out" / "train" / "a", "gen1")
    ref = frames_reference(x, y, p, t, seq.plan.ends, 240, 304)
    assert np.array_equal(seq.frames(0, seq.num_windows), ref)
    assert ref.sum() > 0


def test_gen4_ds2_layout_and_reference(tmp_path):
    make_gen4_dataset(tmp_path / "in")
    results = precompute_rvt(tmp_path / "in", tmp_path / "out", "gen4", jobs=2)
    assert sorted((r.split, r.status) for r in results) == [("test", "written"), ("train", "written")]
    rep = tmp_path / "out" / "train" / "g" / "event_representations_v2" / REP
    assert os.listdir(rep).count("event_representations_ds2_nearest.h5") == 1
    ends = np.load(rep / "timestamps_us.npy")
    assert ends.tolist()[:3] == [100_000, 150_001, 200_002]       # B = 6 x 16667 = 100002
    with np.load(tmp_path / "out" / "train" / "g" / "labels_v2" / "labels.npz") as z:
        assert set(z["labels"]["class_id"].tolist()) <= {0, 1, 2}   # class 3 filtered
    x, y, p, t = read_dat_whole(tmp_path / "in" / "train" / "g_td.dat")
    seq = LayoutSequence(tmp_path / "out" / "train" / "g", "gen4")
    assert seq.frame_shape == (20, 360, 640)
    assert np.array_equal(seq.frames(0, seq.num_windows),
                          frames_reference(x, y, p, t, seq.plan.ends, 720, 1280, ds2=True))
    with h5py.File(rep / "event_representations_ds2_nearest.h5") as f:
        assert f["data"]._filters == {"32001": (2, 2, 1, 4_608_000, 1, 1, 5)}


def test_backwards_dat_times_and_count_mode(tmp_path):
    rng = np.random.default_rng(5)
    ev = random_events(rng, 20_000, 700_000, 240, 304)
    os.makedirs(tmp_path / "in" / "train")
    back = {100: 5, 5000: int(ev["t"][4000]), 12_345: 0}
    write_dat(tmp_path / "in" / "train" / "s_td.dat", ev, 240, 304, back)
    np.save(tmp_path / "in" / "train" / "s_bbox.npy",
            boxes([(t, 5, 5, 40, 40, 0) for t in (250_000, 500_000)]))
    x, y, p, t = read_dat_whole(tmp_path / "in" / "train" / "s_td.dat")
    assert t[12_345] == 0                              # the file really goes backwards
    for mode in ("duration", "count"):
        seq = RecordingSequence(tmp_path / "in" / "train" / "s_td.dat",
                                tmp_path / "in" / "train" / "s_bbox.npy", "gen1", True, mode)
        ref = frames_reference(x, y, p, t, seq.plan.ends, 240, 304, mode=mode)
        assert np.array_equal(seq.frames(0, seq.num_windows), ref)
        k = seq.num_windows // 2                       # random access in the middle
        assert np.array_equal(seq.frames(k, k + 2), ref[k:k + 2])
    precompute_rvt(tmp_path / "in", tmp_path / "out", "gen1", "count")
    assert os.path.isdir(tmp_path / "out" / "train" / "s" / "event_representations_v2" /
                         "stacked_histogram_ne=50000_nbins=10")


def test_resume_kept_in_progress_and_mismatch(gen1, tmp_path):
    root, _ = gen1
    rep = root / "out" / "train" / "a" / "event_representations_v2" / REP
    before = os.stat(rep / "event_representations.h5").st_mtime_ns
    (rep / "event_representations_in_progress.h5").write_bytes(b"partial")
    results = precompute_rvt(root / "in", root / "out", "gen1")
    assert {r.status for r in results} == {"kept"}
    assert os.stat(rep / "event_representations.h5").st_mtime_ns == before
    # the leftover is only removed when the sequence is recomputed
    os.remove(rep / "event_representations.h5")
    precompute_rvt(root / "in", root / "out", "gen1")
    assert not os.path.exists(rep / "event_representations_in_progress.h5")
    assert os.path.exists(rep / "event_representations.h5")
    np.save(rep / "timestamps_us.npy", np.arange(3))
    results = precompute_rvt(root / "in", root / "out", "gen1")
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1 and "different contents" in failed[0].error
    os.remove(rep / "timestamps_us.npy")
    precompute_rvt(root / "in", root / "out", "gen1")


def test_no_labels_ignored_and_missing_event_file(tmp_path):
    os.makedirs(tmp_path / "in" / "train")
    ign = GEN1.ignored_sequences[0]
    for name in ("small", ign):
        write_dat(tmp_path / "in" / "train" / f"{name}_td.dat",
                  random_events(np.random.default_rng(0), 100, 300_000, 240, 304), 240, 304)
        np.save(tmp_path / "in" / "train" / f"{name}_bbox.npy",
                boxes([(200_000, 5, 5, 9, 40, 0)]))      # w = 9 < 10: nothing survives
    os.makedirs(tmp_path / "out" / "train" / "small")
    results = precompute_rvt(tmp_path / "in", tmp_path / "out", "gen1")
    assert [(r.name, r.status) for r in results] == [("small", "no labels")]
    assert not os.path.exists(tmp_path / "out" / "train" / "small")
    np.save(tmp_path / "in" / "train" / "lonely_bbox.npy", boxes([(200_000, 5, 5, 40, 40, 0)]))
    seqs, problems = find_sequences(tmp_path / "in", "gen1")
    assert [s.name for s in seqs] == ["small"]
    assert problems[0][0].endswith("lonely_bbox.npy") and "no event file" in problems[0][1]
    results = precompute_rvt(tmp_path / "in", tmp_path / "out", "gen1")
    assert [(r.name, r.status) for r in results] == [("lonely_bbox.npy", "failed"),
                                                     ("small", "no labels")]
    with pytest.raises(MissingFileError, match="lonely_bbox"):
        recording_sequences(tmp_path / "in", "train", "gen1")


def test_geometry_mismatch_and_rule_errors_are_reported(tmp_path):
    os.makedirs(tmp_path / "in" / "val")
    write_dat(tmp_path / "in" / "val" / "w_td.dat",
              random_events(np.random.default_rng(0), 100, 300_000, 480, 640), 480, 640)
    np.save(tmp_path / "in" / "val" / "w_bbox.npy", boxes([(200_000, 5, 5, 40, 40, 0)]))
    write_dat(tmp_path / "in" / "val" / "j_td.dat",
              random_events(np.random.default_rng(0), 100, 300_000, 240, 304), 240, 304)
    np.save(tmp_path / "in" / "val" / "j_bbox.npy",
            boxes([(200_000, 5, 5, 40, 40, 0), (201_000, 5, 5, 40, 40, 0)]))
    results = {r.name: r for r in precompute_rvt(tmp_path / "in", tmp_path / "out", "gen1")}
    assert results["w"].status == "failed" and "304x240" in results["w"].error
    assert results["j"].status == "failed" and "c > 0" in results["j"].error


def test_cli(gen1, tmp_path, capsys):
    root, _ = gen1
    assert main(["precompute", "--layout", "rvt", "--dataset", "gen1", "--no-progress",
                 str(root / "in"), str(tmp_path / "o"), "-j", "2"]) == 0
    out = capsys.readouterr().out
    assert "3/3 ok" in out
    a = LayoutSequence(tmp_path / "o" / "val" / "c", "gen1")
    b = LayoutSequence(root / "out" / "val" / "c", "gen1")
    assert np.array_equal(a.frames(0, a.num_windows), b.frames(0, b.num_windows))
    assert main(["precompute", "--layout", "rvt", "--no-progress", str(tmp_path / "empty"),
                 str(tmp_path / "o2")]) == 2
    os.makedirs(tmp_path / "nothing" / "train")
    assert main(["precompute", "--layout", "rvt", "--no-progress", str(tmp_path / "nothing"),
                 str(tmp_path / "o3")]) == 1
    assert main(["precompute", "x.dat"]) == 2            # the tensor layout still needs -o


def test_layout_reader_equals_on_the_fly(gen1):
    root, _ = gen1
    for lay in layout_sequences(root / "out", "train", "gen1"):
        rec = RecordingSequence(root / "in" / "train" / f"{lay.name}_td.dat",
                                root / "in" / "train" / f"{lay.name}_bbox.npy", "gen1", True)
        assert np.array_equal(lay.repr_index, rec.repr_index)
        assert np.array_equal(lay.frames(2, 7), rec.frames(2, 7))
        for i in range(len(lay.repr_index)):
            assert np.array_equal(lay.labels_of_frame(i), rec.labels_of_frame(i))


def test_frame_labels_plan_matches_stored(gen1):
    root, _ = gen1
    fl = frame_labels(np.load(root / "in" / "val" / "c_bbox.npy"), GEN1, False)
    plan = plan_sequence(fl)
    assert np.array_equal(LayoutSequence(root / "out" / "val" / "c").plan.ends, plan.ends)
    with pytest.raises(RvtRuleError):
        frame_labels(boxes([(100_000, 5, 5, 40, 40, 0), (150_000, 5, 5, 40, 40, 0)]), GEN4, False)


def test_an_error_while_computing_frames_fails_the_sequence_and_leaves_no_h5(tmp_path):
    """The frames are computed in a background thread ahead of the write: an error there
    (a polarity RVT refuses, in the 4th window) reaches the sequence's result, and neither the
    final nor the in-progress h5 is left behind."""
    folder = tmp_path / "in" / "train"
    os.makedirs(folder)
    t = np.arange(0, 1_400_000, 20, dtype=np.int64)
    p = (np.arange(len(t)) % 2).astype(np.int64)
    p[t >= 560_000] = 3                           # the window ending at 625 ms and later
    with h5py.File(folder / "q_td.h5", "w") as f:
        for k, v in (("x", t % 304), ("y", (t // 304) % 240), ("p", p), ("t", t)):
            f.create_dataset(f"events/{k}", data=v)
        f.create_dataset("events/height", data=240)
        f.create_dataset("events/width", data=304)
    np.save(folder / "q_bbox.npy", boxes([(t_, 20, 30, 50, 40, 0) for t_ in
                                          (250_000, 500_000, 750_000, 1_000_000)]))
    (result,) = precompute_rvt(tmp_path / "in", tmp_path / "out", "gen1")
    assert result.status == "failed" and "polarity 3" in result.error and "q_td.h5" in result.error
    rep = tmp_path / "out" / "train" / "q" / "event_representations_v2" / REP
    assert sorted(os.listdir(rep)) == ["objframe_idx_2_repr_idx.npy", "timestamps_us.npy"]


def test_write_sequence_reports_each_frame_it_writes(tmp_path):
    make_gen1_dataset(tmp_path / "in")
    sequences, _ = find_sequences(tmp_path / "in", "gen1")
    counts = []
    result = write_sequence(sequences[0], str(tmp_path / "out"), "gen1", progress=counts.append)
    assert result.status == "written" and result.windows > 1
    assert counts == list(range(1, result.windows + 1))
