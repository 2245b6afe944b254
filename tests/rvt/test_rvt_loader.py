"""RVT's samples, batches, augmentation and loaders (on evstream's stream loader)."""

import numpy as np
import pytest
import torch

from evstream.data.batch_buffers import in_place_batch
from evstream.errors import RvtRuleError
from evstream.rvt import augmentation as aug
from evstream.rvt.batch import DataType, collate_rvt
from evstream.rvt.config import GEN1, GEN4
from evstream.rvt.layout_reader import layout_sequences
from evstream.rvt.layout_writer import precompute_rvt
from evstream.rvt.loader import RvtLoader, RvtMixedLoader, mixed_split
from evstream.rvt.samples import (cut_range, random_sample_windows, scale_labels,
                                  stream_ranges, training_labels)
from evstream.rvt.sequence import recording_sequences
from rvt_data import boxes, make_gen1_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rvtload")
    make_gen1_dataset(root / "in")
    precompute_rvt(root / "in", root / "out", "gen1")
    return root


def test_random_sample_windows():
    specs = random_sample_windows(np.array([3, 5, 7, 9, 11]), 5)
    assert [(s.start, s.stop) for s in specs] == [(1, 6), (3, 8), (5, 10), (7, 12)]
    assert all(s.first and s.padded_steps == 0 for s in specs)
    assert random_sample_windows(np.array([3]), 5) == []


def test_stream_ranges_and_cuts():
    r = np.array([3, 5, 7, 20, 22])
    assert stream_ranges(r, 30, 5, True) == [(0, 8), (16, 23)]      # split where the gap > L
    assert stream_ranges(r, 30, 1, True) == [(3, 4), (5, 6), (7, 8), (20, 21), (22, 23)]
    assert stream_ranges(r, 30, 5, False) == [(0, 30)]
    cuts = cut_range(16, 23, 5)
    assert [(c.start, c.stop, c.first, c.padded_steps) for c in cuts] == \
        [(16, 21, True, 0), (21, 23, False, 3)]


def test_training_labels_gen1_and_gen4_half_scale():
    b = boxes([(250_000, 10, 20, 30, 40, 2, 9, 0.5), (250_000, 290, 230, 20, 30, 1)])
    t1 = training_labels(b, GEN1)
    assert t1.dtype == np.float32 and t1.shape == (2, 7)
    assert t1[0].tolist() == [250_000, 10, 20, 30, 40, 2, 0.5]          # track_id dropped
    assert t1[1].tolist()[1:5] == [290, 230, 13, 9]                      # clamped to W-1, H-1
    with pytest.raises(RvtRuleError):
        training_labels(boxes([(250_000, 303, 20, 30, 40, 2)]), GEN1)    # flat: RVT asserts
    t4 = training_labels(b[:1], GEN4)
    assert t4[0].tolist() == [250_000, 5, 10, 15, 20, 2, 0.5]
    # x1 = min((x + w) / 2, 640 - 1): a box reaching the right edge is cut at 639
    edge = scale_labels(np.array([[0, 1270, 0, 9, 10, 0, 1]], np.float32), 0.5, (720, 1280))
    assert edge[0, 1] == 635 and edge[0, 3] == 639 - 635
    assert float(np.float32(20_000_001)) == 20_000_000                   # float32 label times


def test_flip_and_zoom_out_boxes():
    frames = torch.zeros((2, 20, 4, 8), dtype=torch.uint8)
    frames[0, 0, 1, 1] = 7
    table = np.array([[0, 1, 1, 2, 2, 0, 1]], np.float32)
    f, (lab, none) = aug.flip(frames, [table, None], 8)
    assert f[0, 0, 1, 6] == 7 and none is None
    assert lab[0, 1] == 8 - 1 - 1 - 2                                    # W - 1 - x - w
    z, (lab,) = aug.zoom_out(frames, [np.array([[0, 2, 0, 4, 2, 0, 1]], np.float32)], 2.0, (3, 1))
    # nearest-exact at 1/2 keeps source pixel (1, 1) as (0, 0), pasted at (y0, x0) = (1, 3)
    assert z.shape == frames.shape and z[0, 0, 1, 3] == 7 and int(z.sum()) == 7
    # x1 = min((2 + 4) / 2, 8 / 2 - 1) = 3, y1 = min(2 / 2, 4 / 2 - 1) = 1, then + (x0, y0)
    assert lab[0, 1:5].tolist() == [1 + 3, 0 + 1, 2, 1]


def test_zoom_in_keeps_a_box_and_skips_without_labels():
    rng = np.random.default_rng(0)
    frames = torch.ones((1, 20, 40, 80), dtype=torch.uint8)
    table = np.array([[0, 10, 10, 6, 6, 0, 1], [0, 70, 30, 5, 5, 1, 1]], np.float32)
    for _ in range(10):
        out, (lab,) = aug.zoom_in(frames, [table], 1.5, rng)
        assert out.shape == frames.shape
        assert len(lab) >= 1 and 0 in lab[:, 5].tolist()     # with 2 boxes the last is never the target
    with pytest.warns(RuntimeWarning):
        aug.zoom_in(frames, [None], 1.5, rng)


def test_mixed_split():
    assert mixed_split(8, 6) == (4, 4, 3, 3)
    assert mixed_split(12, 6) == (6, 6, 3, 3)
    assert mixed_split(3, 2) == (1, 2, 1, 1)


def test_batch_contract_and_sources_agree(data):
    lay = layout_sequences(data / "out", "train", "gen1")
    rec = recording_sequences(data / "in", "train", "gen1")
    a = list(RvtLoader(lay, "gen1", "stream", 2, 0, sequence_length=4))
    b = list(RvtLoader(rec, "gen1", "stream", 2, 2, sequence_length=4))
    assert len(a) == len(b) == 3                       # 12 windows per sequence: 4 + 4 + 4
    for x, y in zip(a, b):
        for u, v in zip(x["data"][DataType.EV_REPR], y["data"][DataType.EV_REPR]):
            assert u.shape == (2, 20, 240, 304) and u.dtype == torch.uint8 and torch.equal(u, v)
    first = a[0]["data"]
    assert first[DataType.IS_FIRST_SAMPLE].tolist() == [True, True]
    assert a[1]["data"][DataType.IS_FIRST_SAMPLE].tolist() == [False, False]
    labels = first[DataType.OBJLABELS_SEQ]
    assert [lab is not None for lab in labels[3]] == [True, True]       # window 3 = frame 0
    assert [labels[k][0] for k in range(3)] == [None, None, None]
    assert labels[3][0].object_labels[0, 0] == 250_000 and labels[3][0].input_size_hw == (240, 304)
    assert a[0]["worker_id"] == 0 and len(first[DataType.IS_PADDED_MASK]) == 4


def test_metavision_format_and_custom_enum(data):
    from enum import Enum, auto

    class ForkDataType(Enum):
        EV_REPR = auto()
        OBJLABELS_SEQ = auto()
        IS_PADDED_MASK = auto()
        IS_FIRST_SAMPLE = auto()
        TOKEN_MASK = auto()

    lay = layout_sequences(data / "out", "train", "gen1")
    mv = next(iter(RvtLoader(lay, "gen1", "random", 3, batch_format="metavision",
                             sequence_length=3)))
    assert mv["inputs"].shape == (3, 3, 20, 240, 304) and mv["inputs"].dtype == torch.float32
    assert mv["frame_is_labeled"][-1].all() and mv["labels"][-1][0]["t"][0] > 0
    assert mv["mask_keep_memory"].flatten().tolist() == [0, 0, 0]
    rv = next(iter(RvtLoader(lay, "gen1", "random", 3, sequence_length=3,
                             data_type=ForkDataType)))
    assert set(rv["data"]) == {ForkDataType.EV_REPR, ForkDataType.OBJLABELS_SEQ,
                               ForkDataType.IS_PADDED_MASK, ForkDataType.IS_FIRST_SAMPLE}
    assert torch.equal(rv["data"][ForkDataType.EV_REPR][0], mv["inputs"][0].to(torch.uint8))


def test_random_mode_covers_samples_once_and_pads(data):
    lay = layout_sequences(data / "out", "train", "gen1")
    loader = RvtLoader(lay, "gen1", "random", 3, train=True, sequence_length=5, seed=4)
    # 2 sequences x 4 samples (frames at windows 5, 7, 9, 11)
    assert loader.samples == 8 and len(loader) == 3
    seen = []
    for batch in loader:
        pads = batch["data"][DataType.IS_PADDED_MASK][0].tolist()
        seen += [p for p in pads]
    assert seen.count(True) == 1                        # the last batch has one filler sample
    halves = [RvtLoader(lay, "gen1", "random", 2, sequence_length=5, rank=r, world_size=2)
              for r in (0, 1)]
    assert sum(h.samples for h in halves) == 16 and len(halves[0]) == len(halves[1]) == 2


def test_worker_batches_from_the_layout_are_written_in_place(data):
    """RVT dict batches from RVT's h5 layout with forked workers: the frames are read straight
    into the loader's shared batch arrays (frame by frame, the rows being strided) and equal
    those read in one process; the metavision format, float32, is copied as before."""
    lay = layout_sequences(data / "out", "train", "gen1")

    def run(workers, batch_format="rvt"):
        return RvtLoader(lay, "gen1", "random", 3, workers, sequence_length=4, train=True,
                         seed=2, batch_format=batch_format, multiprocessing_context="fork")

    def frames(batch):
        return torch.stack(batch["data"][DataType.EV_REPR])

    expected = [frames(b).clone() for b in run(0)]
    in_place = 0
    for batch, want in zip(run(2), expected, strict=True):
        base = batch["data"][DataType.EV_REPR][0]._base
        in_place += in_place_batch([base[:, i] for i in range(3)]) is base
        assert torch.equal(frames(batch), want)
    assert in_place == len(expected) >= 3
    assert run(2, "metavision").loader.batch_output is None
    mv = [b["inputs"] for b in run(2, "metavision")]
    assert all(torch.equal(m, e.float()) for m, e in zip(mv, expected, strict=True))


def test_determinism_epochs_and_resume(data):
    rec = recording_sequences(data / "in", "train", "gen1")

    def frames(batches):
        return [torch.stack(b["data"][DataType.EV_REPR]) for b in batches]

    def run(num_workers=0):
        return RvtLoader(rec, "gen1", "stream", 2, num_workers, sequence_length=3, train=True,
                         seed=1)

    a, b = frames(list(run())), frames(list(run(num_workers=2)))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    e1 = run()
    e1.set_epoch(1)
    assert not all(torch.equal(x, y) for x, y in zip(a, frames(list(e1))))
    loader = run()
    it = iter(loader)
    head = [next(it) for _ in range(2)]
    state = loader.state_dict()
    resumed = run()
    resumed.load_state_dict(state)
    tail = frames(list(resumed))
    assert all(torch.equal(x, y) for x, y in zip(frames(head) + tail, a))
    assert len(frames(head) + tail) == len(a)


def test_a_resume_takes_the_augmentation_seed_from_the_state(data):
    """load_state_dict takes seed and epoch from the state: the augmentation too (it kept the
    seed the loader was built with, so a resumed run augmented differently)."""
    rec = recording_sequences(data / "in", "train", "gen1")

    def run(seed):
        return RvtLoader(rec, "gen1", "stream", 2, 0, sequence_length=3, train=True, seed=seed)

    def frames(batches):
        return [torch.stack(b["data"][DataType.EV_REPR]) for b in batches]

    full = run(1)
    full.set_epoch(2)
    want = frames(list(full))
    head_loader = run(1)
    head_loader.set_epoch(2)
    it = iter(head_loader)
    head = [next(it) for _ in range(2)]
    resumed = run(9)
    resumed.load_state_dict(head_loader.state_dict())
    got = frames(head) + frames(list(resumed))
    assert len(got) == len(want) and all(torch.equal(x, y) for x, y in zip(got, want))
    other = run(9)
    other.set_epoch(2)
    assert not all(torch.equal(x, y) for x, y in zip(frames(list(other)), want))


def test_kept_workers_give_the_batches_of_every_epoch(data):
    """persistent_workers: the same batches as one process, epoch after epoch (the epoch's
    shuffle and augmentation reach the kept workers), from the same worker processes."""
    lay = layout_sequences(data / "out", "train", "gen1")

    def run(workers, persistent=False):
        return RvtLoader(lay, "gen1", "random", 3, workers, sequence_length=4, train=True,
                         seed=2, persistent_workers=persistent, multiprocessing_context="fork")

    kept = run(2, True)
    for epoch in (0, 1):
        reference = run(0)
        reference.set_epoch(epoch)
        kept.set_epoch(epoch)
        want = [torch.stack(b["data"][DataType.EV_REPR]).clone() for b in reference]
        got = [torch.stack(b["data"][DataType.EV_REPR]).clone() for b in kept]
        assert len(got) == len(want) >= 3 and all(torch.equal(x, y) for x, y in zip(got, want))
        crew = kept.loader._idle_crew
        assert crew is not None
        workers = [p.pid for p in crew._iterator._workers]
        if epoch == 0:
            first = workers
    assert workers == first
    kept.close()
    assert kept.loader._idle_crew is None


def test_augmented_random_batches_workers_independent(data):
    lay = layout_sequences(data / "out", "train", "gen1")
    runs = [list(RvtLoader(lay, "gen1", "random", 2, w, train=True, sequence_length=3, seed=7))
            for w in (0, 2)]
    for x, y in zip(*runs):
        assert all(torch.equal(u, v) for u, v in zip(x["data"][DataType.EV_REPR],
                                                     y["data"][DataType.EV_REPR]))


def test_mixed_loader_rows(data):
    lay = layout_sequences(data / "out", "train", "gen1")
    mixed = RvtMixedLoader(lay, "gen1", 4, 0, sequence_length=3)
    batch = next(iter(mixed))
    assert batch["data"][DataType.EV_REPR][0].shape[0] == 4
    assert len(batch["data"][DataType.OBJLABELS_SEQ][0]) == 4
    assert batch["data"][DataType.IS_FIRST_SAMPLE][2:].tolist() == [True, True]   # random rows


def test_collate_rvt_empty_label_becomes_none():
    item = {"frames": torch.zeros((1, 20, 2, 2), dtype=torch.uint8),
            "labels": [np.zeros((0, 7), np.float32)], "is_first_sample": True,
            "is_padded_mask": np.zeros(1, bool), "input_size_hw": (2, 2), "info": ("s", 0, 1)}
    assert collate_rvt([item])["data"][DataType.OBJLABELS_SEQ][0][0] is None


def test_augmentation_draw_rates_and_ranges():
    rng = np.random.default_rng(123)
    draws = [aug.draw_random(rng, (360, 640)) for _ in range(4000)]
    flips = np.mean([d.flip for d in draws])
    zin = [d.zoom_in for d in draws if d.zoom_in is not None]
    zout = [d for d in draws if d.zoom_out is not None]
    assert abs(flips - 0.5) < 0.03
    assert abs((len(zin) + len(zout)) / 4000 - 0.8) < 0.03
    assert abs(len(zin) / (len(zin) + len(zout)) - 0.8) < 0.03
    assert 1 <= min(zin) and max(zin) <= 1.5 and all(1 <= d.zoom_out <= 1.2 for d in zout)
    for d in zout:                                   # placement keeps the shrunk frame inside
        assert 0 <= d.zoom_out_xy[0] <= 640 - int(640 / d.zoom_out)
        assert 0 <= d.zoom_out_xy[1] <= 360 - int(360 / d.zoom_out)
    stream = [aug.draw_stream(rng, (360, 640)) for _ in range(4000)]
    assert all(d.zoom_in is None for d in stream)
    assert abs(np.mean([d.zoom_out is not None for d in stream]) - 0.5) < 0.03
    assert aug.uniform(rng, 1.0, 1.0) == 1.0


_WARM_UP_SCRIPT = """
import sys
from evstream.rvt.loader import RvtLoader
from evstream.rvt.representation import _count_window
from evstream.rvt.sequence import recording_sequences
sequences = recording_sequences(sys.argv[1], "train", "gen1")
loader = RvtLoader(sequences, "gen1", "stream", 2, 1, sequence_length=4,
                   multiprocessing_context=sys.argv[2])
batches = sum(1 for _ in loader)
print(batches, len(_count_window.signatures))
"""


@pytest.mark.parametrize("context, kernels_in_parent", [("fork", 1), ("spawn", 0)])
def test_forked_workers_start_with_the_kernels_loaded_by_the_parent(data, context,
                                                                    kernels_in_parent):
    """With forked workers the parent computes one sample first (its kernels are then
    inherited by every worker of every epoch); spawned workers gain nothing from it, so the
    parent does not."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _WARM_UP_SCRIPT, str(data / "in"), context],
                         capture_output=True, text=True, timeout=300, check=True).stdout.split()
    assert out == ["3", str(kernels_in_parent)]


@pytest.mark.parametrize("first, last", [(0, 13), (-1, 2), (3, 2)])
def test_frames_outside_the_sequence_raise_naming_the_file(data, first, last):
    from evstream.errors import ArgumentError

    for seq in (layout_sequences(data / "out", "train", "gen1")[0],
                recording_sequences(data / "in", "train", "gen1")[0]):
        assert seq.num_windows == 12
        with pytest.raises(ArgumentError, match=r"windows \[.*outside the sequence's 12 windows"):
            seq.frames(first, last)
        assert seq.frames(12, 12).shape == (0, 20, 240, 304)
