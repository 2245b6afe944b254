"""SequentialDataset / SequentialDataLoader: batch contract, inputs from .h5/.dat/.raw (mixed),
padding, errors, workers, the reader LRU, show() and save_video()."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from evstream.data import SequentialDataLoader, SequentialDataset
from evstream.data.sequential_dataset import ArrayDimError, collate_fn, load_labels_stub
from evstream.data.sequential_dataset_common import show_dataloader
from evstream.errors import ArgumentError, GeometryError
from evstream.io import RawReader
from evstream.preprocessing import CDProcessor, get_preprocess_function_names, register_new_preprocessing

from sample_oracle import sample
from seqloader_data import (synthetic_events, tensor_rows, write_dat, write_raw,
                            write_tensor_file)

DT = 50_000


def small_h5(path, rows, shape=(2, 60, 80), sensor=(120, 160), **kwargs):
    return write_tensor_file(path, tensor_rows(rows, shape=shape, active=(slice(5, 20), slice(5, 30))),
                             sensor=sensor, **kwargs)


def expected_histo(events, start, total, num_tbins=3, hw=(60, 80), k=1, **kwargs):
    window = events[(events["t"] >= start) & (events["t"] < start + total)].copy()
    window["t"] -= start
    proc = CDProcessor(hw[0], hw[1], num_tbins, "histo", downsampling_factor=k, preprocess_kwargs=kwargs)
    return proc(window, delta_t=total, copy=True)


# ---------------------------------------------------------------- contract and sources
def test_mixed_dat_raw_h5_batches(tmp_path):
    """A .dat, a .raw and an .h5 in one loader (the original crashes on .dat + .h5 and cannot
    read .raw); event tensors equal CDProcessor on the same window."""
    ev_dat = synthetic_events(600_000, height=120, width=160, seed=1)
    ev_raw = synthetic_events(450_000, height=120, width=160, seed=2)
    dat = write_dat(tmp_path / "a_td.dat", ev_dat, 120, 160)
    raw = write_raw(tmp_path / "b.raw", ev_raw, 120, 160, fmt="evt2")
    h5 = small_h5(tmp_path / "c.h5", 9)
    loader = SequentialDataLoader([dat, raw, h5], DT, "histo", [3, 2, 60, 80], batch_size=3,
                                  num_workers=0, padding=True, preprocess_kwargs={"max_incr_per_pixel": 2})
    raw_events = RawReader(raw).read_all()           # time-shifted, as the loader reads it
    assert len(loader) == 4
    n_batches = 0
    for step, batch in enumerate(loader):
        n_batches += 1
        assert set(batch) == {"inputs", "labels", "mask_keep_memory", "frame_is_labeled", "video_infos"}
        assert batch["inputs"].shape == (3, 3, 2, 60, 80) and batch["inputs"].dtype == torch.float32
        assert batch["frame_is_labeled"].shape == (3, 3) and batch["frame_is_labeled"].dtype == torch.bool
        assert len(batch["labels"]) == 3 and all(len(lab) == 3 for lab in batch["labels"])
        for i, (meta, start, duration) in enumerate(batch["video_infos"]):
            keep = batch["mask_keep_memory"][i].item()
            if meta.is_padding():
                assert keep == 1.0 and not batch["inputs"][:, i].any() and (start, duration) == (0, 0)
                continue
            assert start == step * 150_000
            assert duration == 150_000 and keep == float(step > 0)
            got = batch["inputs"][:, i].numpy()
            if meta.path == dat:
                np.testing.assert_array_equal(got, expected_histo(ev_dat, start, 150_000, max_incr_per_pixel=2))
            elif meta.path == raw:
                np.testing.assert_array_equal(got, expected_histo(raw_events, start, 150_000,
                                                                  max_incr_per_pixel=2))
            else:
                rows = [int(round(got[t, 0, 1, 1] * 256)) - 1 for t in range(3)]
                assert rows == [3 * step, 3 * step + 1, 3 * step + 2]
    assert n_batches == 4
    # workers of this process kept the files open and read each recording sequentially
    stats = loader.dataset.source_stats
    assert stats["opens"] == 3 and stats["seeks"] == 2 and stats["sequential"] == 3 + 2


def test_dat_and_raw_of_the_same_events_give_the_same_batches(tmp_path):
    ev = synthetic_events(400_000, height=120, width=160, seed=5)
    dat = write_dat(tmp_path / "x_td.dat", ev, 120, 160)
    raw = write_raw(tmp_path / "x.raw", ev, 120, 160, fmt="evt2")
    assert RawReader(raw).read_all()["t"][0] == ev["t"][0]     # evt2 from t 0: no shift
    out = []
    for path in (dat, raw):
        loader = SequentialDataLoader([path], DT, "event_cube", [2, 6, 120, 160], batch_size=1,
                                      num_workers=0)
        out.append(torch.cat([b["inputs"] for b in loader]))
    assert out[0].shape == (8, 1, 6, 120, 160)
    assert torch.equal(out[0], out[1])


def test_real_raw_sample_counts_every_event():
    """On a real EVT 2.0 recording: every event of the played chunks is counted once."""
    name = "count_events_test"
    if name not in get_preprocess_function_names():
        def count(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, **kw):
            bins = np.minimum(events["t"] * output_array.shape[0] // total_tbins_delta_t,
                              output_array.shape[0] - 1)
            np.add.at(output_array, (bins, 0, events["y"] >> downsampling_factor,
                                     events["x"] >> downsampling_factor), 1)
        register_new_preprocessing(name, 1, count, lambda im: np.zeros(im.shape[-2:] + (3,), np.uint8),
                                   {"preprocess_dtype": np.float64})
    path = str(sample("faery_evt2.raw"))
    loader = SequentialDataLoader([path], 10_000, name, [3, 1, 240, 320], batch_size=1, num_workers=0)
    assert len(loader) == 3                                  # 95.9 ms -> 3 chunks of 30 ms
    total = sum(int(b["inputs"].sum()) for b in loader)
    t = RawReader(path).read_all()["t"]
    assert total == int(np.count_nonzero(t < 90_000))


def test_h5_store_as_uint8_resize_and_legacy(tmp_path):
    rows = tensor_rows(6, shape=(2, 60, 80), active=(slice(10, 30), slice(10, 50)))
    u8 = write_tensor_file(tmp_path / "u8.h5", rows, sensor=(120, 160), store_as_uint8=True)
    ds = SequentialDataset([u8], DT, "histo", [3, 2, 60, 80], batch_size=1)
    assert ds.dtype == np.float32
    seq = ds[0][0].numpy()
    np.testing.assert_allclose(seq, np.round(rows[:3] * 255) / 255, atol=1e-7)
    # stored 60x80, asked 30x40: area interpolation (2x2 means)
    small = SequentialDataset([small_h5(tmp_path / "s.h5", 6)], DT, "histo", [3, 2, 30, 40], batch_size=1)
    got = small[1][0].numpy()
    full = tensor_rows(6, shape=(2, 60, 80), active=(slice(5, 20), slice(5, 30)))[3:6]
    np.testing.assert_allclose(got, full.reshape(3, 2, 30, 2, 40, 2).mean(axis=(3, 5)), atol=1e-6)
    # legacy attribute 'shift' instead of event_input_*
    legacy = write_tensor_file(tmp_path / "legacy.h5", rows, legacy_shift=1)
    assert SequentialDataset([legacy], DT, "histo", [3, 2, 60, 80]).get_size_original() == (120, 160)


def test_quantized_with_downsampling_is_float(tmp_path):
    ev = synthetic_events(200_000, height=120, width=160)
    dat = write_dat(tmp_path / "q_td.dat", ev, 120, 160)
    ds = SequentialDataset([dat], DT, "histo_quantized", [2, 2, 60, 80], batch_size=1)
    assert ds.dtype == np.float32 and ds[0][0].dtype == torch.float32


# ---------------------------------------------------------------- schedule through the loader
def test_padding_off_and_on(tmp_path, caplog):
    files = [small_h5(tmp_path / f"f{i}.h5", rows) for i, rows in enumerate([12, 6, 3])]
    with caplog.at_level(logging.WARNING):
        short = SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80], batch_size=2, num_workers=0)
    # slots: f0 + f2 (4 + 1 chunks), f1 (2 chunks): stops at 2 steps, f2 never read
    assert len(short) == 2 and "f2.h5 (all 150000 us)" in caplog.text
    padded = SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80], batch_size=2, num_workers=0,
                                  padding=True)
    batches = list(padded)
    assert len(batches) == len(padded) == 5
    last = batches[-1]
    meta, start, duration = last["video_infos"][1]
    assert meta.is_padding() and (start, duration) == (0, 0)
    assert all(np.isnan(last["labels"][t][1]) for t in range(3))
    assert last["mask_keep_memory"][1].item() == 1.0 and not last["frame_is_labeled"][:, 1].any()
    assert os.path.basename(last["video_infos"][0][0].path) == "f2.h5"
    assert last["mask_keep_memory"][0].item() == 0.0
    balanced = SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80], batch_size=2, num_workers=0,
                                    padding=True, balanced=True)
    assert len(balanced) == 4                                # f0 | f1 + f2


def test_batch_size_reduced_and_empty(tmp_path, caplog):
    f = small_h5(tmp_path / "only.h5", 6)
    with caplog.at_level(logging.WARNING):
        loader = SequentialDataLoader([f], DT, "histo", [3, 2, 60, 80], batch_size=4, num_workers=0)
    assert loader.batch_size == 1 and "batch_size reduced to 1" in caplog.text
    assert [b["inputs"].shape[1] for b in loader] == [1, 1]
    empty = SequentialDataLoader([], DT, "histo", [3, 2, 60, 80], batch_size=2, num_workers=0)
    assert len(empty) == 0 and list(empty) == []


def test_array_dim_errors(tmp_path):
    h5 = small_h5(tmp_path / "t.h5", 3)                          # sensor 160 x 120, stored 80 x 60
    dat = write_dat(tmp_path / "d_td.dat", synthetic_events(100_000), 240, 320)
    for path, dim in [(h5, [3, 2, 50, 80]), (h5, [3, 2, 60, 53]), (dat, [3, 2, 240, 160]),
                      (dat, [3, 2, 80, 320 // 3 + 1]), (dat, [3, 2, 80, 107])]:
        with pytest.raises(ArrayDimError, match="wrong aspect ratio in array_dim"):
            SequentialDataset([path], DT, "histo", dim)
    # the original's AssertionError, and evstream's GeometryError (a ValueError)
    with pytest.raises(AssertionError):
        SequentialDataset([dat], DT, "histo", [3, 2, 80, 107])
    with pytest.raises(GeometryError):
        SequentialDataset([dat], DT, "histo", [3, 2, 80, 107])
    dat3 = write_dat(tmp_path / "e_td.dat", synthetic_events(100_000), 240, 480)
    with pytest.raises(ArrayDimError):                            # ratio 3: not a power of two
        SequentialDataset([dat3], DT, "histo", [3, 2, 80, 160])
    ds = SequentialDataset([dat], DT, "histo", [3, 2, 60, 80])
    assert ds.downsampling_factor == 2 and ds.get_size() == [60, 80]


def test_tensor_file_mismatches(tmp_path):
    h5 = small_h5(tmp_path / "t.h5", 3)
    with pytest.raises(ArgumentError, match="delta_t 50000"):
        SequentialDataset([h5], 10_000, "histo", [3, 2, 60, 80])
    with pytest.raises(ArgumentError, match="channels"):
        SequentialDataset([h5], DT, "event_cube", [3, 6, 60, 80])
    with pytest.raises(ArgumentError, match="can't load"):
        SequentialDataset([str(tmp_path / "x.npy")], DT, "histo", [3, 2, 60, 80])
    dat = write_dat(tmp_path / "d_td.dat", synthetic_events(100_000, height=120, width=160), 120, 160)
    with pytest.raises(ArgumentError, match="makes 2"):
        SequentialDataset([dat], DT, "histo", [3, 3, 60, 80])


def test_kwargs_that_do_not_apply_to_tensor_files_are_reported(tmp_path, caplog):
    h5 = small_h5(tmp_path / "t.h5", 3)                           # written with max_incr_per_pixel 5
    with caplog.at_level(logging.WARNING):
        SequentialDataset([h5], DT, "histo", [3, 2, 60, 80], preprocess_kwargs={"max_incr_per_pixel": 2.5})
    assert "max_incr_per_pixel=5.0 (loader: 2.5)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        SequentialDataset([h5], DT, "histo", [3, 2, 60, 80], preprocess_kwargs={"max_incr_per_pixel": 5})
    assert "max_incr_per_pixel" not in caplog.text


# ---------------------------------------------------------------- workers and caches
def labels_with_pid(metadata, start, duration, tensor):
    """Labels = the id of the process that loaded the item."""
    return [os.getpid()] * 3, np.ones(3, dtype=bool)


def test_workers_give_identical_batches(tmp_path):
    ev = synthetic_events(500_000, height=120, width=160, seed=3)
    files = [write_dat(tmp_path / "w_td.dat", ev, 120, 160), small_h5(tmp_path / "w.h5", 9),
             write_raw(tmp_path / "w.raw", ev[ev["t"] < 320_000], 120, 160, fmt="evt2")]

    def flip(plane):
        return torch.flip(plane, dims=[-1]) if torch.rand(1).item() < 0.5 else plane

    runs = []
    for workers in (0, 2):
        loader = SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80], batch_size=3,
                                      num_workers=workers, padding=True, transforms=flip,
                                      load_labels=labels_with_pid)
        runs.append(list(loader))
    assert len(runs[0]) == len(runs[1]) == 3          # 450 ms | 450 ms | 300 ms + padding
    pids = [{lab for b in run for lab in b["labels"][0] if isinstance(lab, int)} for run in runs]
    assert pids[0] == {os.getpid()} and len(pids[1]) == 2 and os.getpid() not in pids[1]
    for a, b in zip(*runs):
        assert torch.equal(a["inputs"], b["inputs"])
        assert torch.equal(a["mask_keep_memory"], b["mask_keep_memory"])
        assert torch.equal(a["frame_is_labeled"], b["frame_is_labeled"])
        assert [(m.path, s, d) for m, s, d in a["video_infos"]] == \
            [(m.path, s, d) for m, s, d in b["video_infos"]]


_LOADS_IN_THIS_PROCESS = []


def labels_counting_parent_loads(metadata, start, duration, tensor):
    if os.getpid() == _LOADS_IN_THIS_PROCESS[0]:
        _LOADS_IN_THIS_PROCESS.append((metadata.path, start))
    return [None] * 3, np.zeros(3, dtype=bool)


def test_forked_workers_are_warmed_up_by_one_item_in_the_parent_once(tmp_path):
    """Before the first iteration forks its workers, the loader computes item 0 here (the
    workers of every epoch then inherit the loaded kernels); not again at the next epoch, and
    not at all without workers."""
    import multiprocessing

    forks = multiprocessing.get_start_method() == "fork"
    ev = synthetic_events(500_000, height=120, width=160, seed=4)
    files = [write_dat(tmp_path / "k_td.dat", ev, 120, 160)]
    _LOADS_IN_THIS_PROCESS[:] = [os.getpid()]
    loader = SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80], batch_size=1,
                                  num_workers=1, load_labels=labels_counting_parent_loads)
    first = [b["inputs"].clone() for b in loader]
    loader.set_epoch(1)
    second = [b["inputs"].clone() for b in loader]
    assert len(first) == len(second) >= 2
    assert _LOADS_IN_THIS_PROCESS[1:] == ([(files[0], 0)] if forks else [])
    _LOADS_IN_THIS_PROCESS[:] = [os.getpid()]
    plain = [b["inputs"] for b in SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80],
                                                       batch_size=1, num_workers=0,
                                                       load_labels=labels_counting_parent_loads)]
    assert len(_LOADS_IN_THIS_PROCESS) - 1 == len(plain)       # one load per batch, no more
    assert all(torch.equal(a, b) for a, b in zip(first, plain))


def test_lru_of_open_files(tmp_path):
    ev = synthetic_events(400_000, height=120, width=160)
    files = [write_dat(tmp_path / f"l{i}_td.dat", ev, 120, 160) for i in range(2)]
    wide = SequentialDataset(files, DT, "histo", [3, 2, 60, 80], batch_size=2)
    items = [wide[n][0] for n in range(len(wide))]
    assert wide.source_stats == {"opens": 2, "seeks": 2, "sequential": len(wide) - 2}
    narrow = SequentialDataset(files, DT, "histo", [3, 2, 60, 80], batch_size=2, max_open_files=1)
    again = [narrow[n][0] for n in range(len(narrow))]
    assert narrow.source_stats["opens"] == len(narrow)         # evicted and reopened each time
    assert all(torch.equal(x, y) for x, y in zip(items, again))
    # random access (not the next chunk) seeks and still gives the same tensors
    assert torch.equal(wide[3][0], items[3]) and torch.equal(wide[0][0], items[0])
    wide.close()


def test_shuffle_items_and_reschedule(tmp_path):
    files = [small_h5(tmp_path / f"s{i}.h5", 9) for i in range(2)]
    loader = SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80], batch_size=2, num_workers=0,
                                  shuffle=True)
    torch.manual_seed(0)
    starts = sorted((m.path, s) for b in loader for m, s, _ in b["video_infos"])
    assert starts == sorted((f, s) for f in files for s in (0, 150_000, 300_000))
    ds = loader.dataset
    ds.reschedule(1, shuffle=False)
    assert len(ds) == 6 and all(ds[n][2] == 0.0 for n in range(len(ds)))   # every chunk restarts


def test_collate_and_stub():
    meta = type("M", (), {"delta_t": 10})()
    labels, mask = load_labels_stub(meta, 0, 30, None)
    assert len(labels) == 3 and mask.dtype == bool and not mask.any()
    items = [(torch.full((3, 1, 2, 2), float(i)), [f"l{i}{t}" for t in range(3)], float(i), np.array([i, 0, 1], bool),
              ("m", i, 30)) for i in range(2)]
    batch = collate_fn(items)
    assert batch["inputs"].shape == (3, 2, 1, 2, 2) and batch["inputs"][0, 1, 0, 0, 0] == 1
    assert batch["labels"] == [["l00", "l10"], ["l01", "l11"], ["l02", "l12"]]
    assert batch["mask_keep_memory"].shape == (2, 1, 1, 1) and batch["mask_keep_memory"].dtype == torch.float32
    assert batch["frame_is_labeled"].tolist() == [[False, True], [False, False], [True, True]]
    assert batch["video_infos"] == (("m", 0, 30), ("m", 1, 30))


# ---------------------------------------------------------------- show and save_video
def test_show_padding_fresh_frames_and_video(tmp_path):
    files = [small_h5(tmp_path / f"v{i}.h5", rows) for i, rows in enumerate([6, 3, 3])]
    loader = SequentialDataLoader(files, DT, "histo", [3, 2, 60, 80], batch_size=3, num_workers=0,
                                  padding=True)
    calls = []

    def viz_labels(frame, labels):
        calls.append(labels)
        return frame

    frames = list(loader.show(viz_labels))
    assert len(frames) == 2 * 3                             # 2 batches x 3 bins
    assert len({id(f) for f in frames}) == len(frames)      # a new array per step
    for k, frame in enumerate(frames):
        assert frame.shape == (2 * 60, 2 * 80, 3) and frame.dtype == np.uint8
        first_bins = k in (0, 1)
        assert (frame[:10, :10, 0] == 222).all() == first_bins   # v0 starts at batch 0
    # batch 1: v1 and v2 are done -> their slots show padding (drawn empty, named, no labels);
    # the fourth cell of the 2 x 2 grid holds no item
    background = loader.get_vis_func()(np.zeros((2, 60, 80), np.float32))[0, 0]
    for k in (3, 4, 5):
        assert (frames[k][:40, 80:] == background).all() and (frames[k][60:100, :80] == background).all()
        assert not frames[k][60:, 80:].any()
    assert len(calls) == 3 * 3 + 3 * 1                      # labels drawn for non-padding items only
    frames[0][:] = 0
    assert frames[1].any()
    # the 6-argument form of the tutorial text
    legacy = list(show_dataloader(loader, 60, 80, 3, loader.get_vis_func(), None))
    assert len(legacy) == 6 and np.array_equal(legacy[2], frames[2])
    n = loader.save_video(tmp_path / "out" / "grid.mp4", png_dir=tmp_path / "png", max_frames=4)
    assert n == 4 and (tmp_path / "out" / "grid.mp4").stat().st_size > 0
    assert sorted(os.listdir(tmp_path / "png")) == [f"frame_{i:06d}.png" for i in range(4)]


def test_chunk_rounded_past_the_end_of_a_tensor_file_is_zero_padded(tmp_path):
    """3 rows of 500 us, chunks of 2 bins: 1500 us rounds up to 2000 (within 1000 us), so the
    second chunk reads row 2 and one row past the end, which must be zeros (batches are built
    in uninitialised memory)."""
    rows = np.ones((3, 2, 6, 8), np.float32)
    h5 = write_tensor_file(tmp_path / "short.h5", rows, delta_t=500, sensor=(6, 8))
    for _ in range(3):                           # reuse freed memory: garbage would show up
        loader = SequentialDataLoader([h5, h5], 500, "histo", [2, 2, 6, 8], batch_size=2,
                                      num_workers=0)
        batches = list(loader)
        assert len(batches) == 2
        last = batches[1]["inputs"]
        assert (last[0] == 1).all() and (last[1] == 0).all()
