"""CDProcessorDataLoader, CDProcessorIterator and the tutorial's streaming block.

The tutorial's RAW files (driving_sample.raw, ...) are not available: its block runs on the
recordings of ../shared/samples plus recordings generated with RawWriter / DatWriter, with a
small delta_t because the samples last 8.8 - 96 ms.
"""

from __future__ import annotations

import itertools
import json
import os
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evstream.data.box_processing import (create_class_lookup, load_box_events, load_boxes,
                                          split_boxes)
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.cd_processor_iterator import CDProcessorIterator, HDF5Iterator, resize_plan
from evstream.data.sequential_dataset_common import show_dataloader
from evstream.io import DatWriter, EventBbox, EventCD, EventsIterator, RawWriter, open_reader
from evstream.preprocessing import CDProcessor
from sample_oracle import ORACLE, sample

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]

HEIGHT, WIDTH = 48, 64
#: histo increment 2^-16: a cell hit n times holds exactly n * 2^-16 (n < 2^16)
M = 2 ** 16


def _events(rng, n, duration, height=HEIGHT, width=WIDTH, extra_t=()):
    ev = np.zeros(n + len(extra_t), dtype=EventCD)
    t = np.concatenate([rng.integers(0, duration, n), np.asarray(extra_t, dtype=np.int64)])
    ev["t"] = np.sort(t)
    ev["x"] = rng.integers(0, width, len(ev))
    ev["y"] = rng.integers(0, height, len(ev))
    ev["p"] = rng.integers(0, 2, len(ev))
    return ev


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Four generated recordings (EVT3, EVT2, DAT, EVT3) of different lengths, 64x48; events on
    chunk and bin boundaries included."""
    folder = tmp_path_factory.mktemp("stream_recordings")
    rng = np.random.default_rng(7)
    specs = [("g_evt3.raw", "evt3", 23_456, 3000), ("g_evt2.raw", "evt2", 41_500, 5000),
             ("g_dat.dat", "dat", 17_003, 2000), ("g_short.raw", "evt3", 9_100, 800)]
    paths = []
    for name, fmt, duration, n in specs:
        ev = _events(rng, n, duration, extra_t=(5000, 10000, 10001, 15000, 999))
        path = folder / name
        if fmt == "dat":
            with DatWriter(path, HEIGHT, WIDTH) as w:
                w.write(ev)
        else:
            with RawWriter(path, HEIGHT, WIDTH, fmt) as w:
                w.write(ev)
        paths.append(str(path))
    return paths


def reader_events(path):
    """The events as the loader sees them (RAW times shifted as OpenEB does)."""
    return open_reader(path).read_all()


def collect(loader):
    """Per file: list of (slot, start, duration, keep_memory, tensor [T, C, H, W], labels, mask)
    in play order; also checks the batch layout."""
    per_file = {}
    padding_keep = []
    batches = 0
    for batch in loader:
        batches += 1
        inputs = batch["inputs"]
        t_bins, b = inputs.shape[:2]
        assert inputs.dtype == torch.float32 and b == loader.batch_size
        assert inputs.shape[2:] == (loader.cin, loader.height, loader.width)
        assert batch["mask_keep_memory"].shape == (b, 1, 1, 1)
        assert batch["frame_is_labeled"].shape == (t_bins, b)
        assert batch["frame_is_labeled"].dtype == torch.bool
        assert len(batch["labels"]) == t_bins and all(len(l) == b for l in batch["labels"])
        assert len(batch["video_infos"]) == b
        for slot, (meta, start, duration) in enumerate(batch["video_infos"]):
            keep = float(batch["mask_keep_memory"][slot])
            if meta.is_padding():
                assert not inputs[:, slot].any() and not batch["frame_is_labeled"][:, slot].any()
                padding_keep.append(keep)
                continue
            per_file.setdefault(meta.path, []).append(
                (slot, start, duration, keep, inputs[:, slot].numpy().copy(),
                 [batch["labels"][t][slot] for t in range(t_bins)],
                 batch["frame_is_labeled"][:, slot].numpy().copy()))
    assert all(k == 0.0 for k in padding_keep)
    return per_file, batches


def check_slots_and_keep_memory(per_file, files):
    """Every file read, its chunks in one slot, keep-memory 0 exactly at its first chunk, slots
    play their files in list order (round robin) back to back."""
    assert set(per_file) == set(files)
    for path, chunks in per_file.items():
        slots = {c[0] for c in chunks}
        assert len(slots) == 1, f"{path} changed batch slot"
        assert [c[3] for c in chunks] == [0.0] + [1.0] * (len(chunks) - 1)


def count_volume(events, delta_t, num_tbins_total, k=0, height=HEIGHT, width=WIDTH):
    """Reference [bins, 2, H >> k, W >> k] counts of events binned by t // delta_t."""
    vol = np.zeros((num_tbins_total, 2, height >> k, width >> k), np.int64)
    np.add.at(vol, (events["t"] // delta_t, events["p"].astype(np.int64),
                    events["y"].astype(np.int64) >> k, events["x"].astype(np.int64) >> k), 1)
    return vol


# ------------------------------------------------------------------------------ the tutorial
TUTORIAL_BLOCK = '''
import os
import cv2
from evstream.data.cd_processor_dataset import CDProcessorDataLoader

# we use a folder of RAW files
files = FILES

for file in files:
    assert os.path.isfile(file)

dataloader = CDProcessorDataLoader(
    files,
    mode='delta_t',
    delta_t=DELTA_T,
    n_events=0,
    max_duration=10000000,
    preprocess_function_name="diff",
    height=240,
    width=320,
    num_tbins=5,
    batch_size=4,
    num_workers=2,
    load_labels=None,
    padding_mode='zeros')
from evstream.data.sequential_dataset_common import show_dataloader

show = show_dataloader(
    dataloader=dataloader,
    height=dataloader.height,
    width=dataloader.width,
    vis_func=dataloader.get_vis_func(),
    viz_labels=None)

if os.environ.get("DOC_DISPLAY", "ON") != "OFF":
    cv2.namedWindow('stream_dataloader')
    for frame in show:
        cv2.imshow('stream_dataloader', frame[..., ::-1])
        key = cv2.waitKey(1)
        if key == 27:
            break
    cv2.destroyWindow('stream_dataloader')
'''


@pytest.fixture(scope="module")
def tutorial_files(tmp_path_factory):
    """The RAW samples plus two generated 640x480 recordings (the samples' sensor size)."""
    folder = tmp_path_factory.mktemp("tutorial")
    rng = np.random.default_rng(3)
    files = [str(sample(name)) for name in ("expelliarmus_evt2_sample.raw",
                                           "expelliarmus_evt3_sample.raw", "faery_evt2.raw")]
    for i, (fmt, duration) in enumerate((("evt3", 31_000), ("evt2", 12_345))):
        path = folder / f"generated_{i}.raw"
        with RawWriter(path, 480, 640, fmt) as w:
            w.write(_events(rng, 20000, duration, 480, 640))
        files.append(str(path))
    return files


def test_tutorial_block(tutorial_files, monkeypatch):
    monkeypatch.setenv("DOC_DISPLAY", "OFF")
    namespace: dict = {}
    code = TUTORIAL_BLOCK.replace("FILES", repr(tutorial_files)).replace("DELTA_T", "2000")
    exec(compile(code, "tutorial_cd_processor_block", "exec"), namespace)
    loader = namespace["dataloader"]
    assert (loader.height, loader.width, loader.batch_size) == (240, 320, 4)
    frames = 0
    for frame in namespace["show"]:
        assert frame.shape == (2 * 240, 2 * 320, 3) and frame.dtype == np.uint8
        frames += 1
    # every sample read whole: the longest slot sets the number of batches
    per_file, batches = collect(loader)
    assert frames == 5 * batches
    check_slots_and_keep_memory(per_file, tutorial_files)
    # slot 0 plays expelliarmus_evt2 (50 ms -> 6 chunks of 10 ms) then generated_1 (12.3 ms -> 2)
    assert [c[1] for c in per_file[tutorial_files[0]]] == [i * 10_000 for i in range(6)]
    assert per_file[tutorial_files[4]][0][0] == 0
    # faery (95.9 ms, time-shifted to 0 .. 95871 us): 10 chunks, the longest slot
    assert len(per_file[tutorial_files[2]]) == 10 and batches == 10
    assert all(c[2] == 10_000 for chunks in per_file.values() for c in chunks)


def test_tutorial_n_events_variant_and_six_argument_show(tutorial_files):
    """The document's variant: mode='n_events', delta_t=0, n_events=10000, and the 6-argument
    show_dataloader(dataloader, height, width, batch_size, vis_func, viz_labels)."""
    loader = CDProcessorDataLoader(tutorial_files[:3], mode="n_events", delta_t=0, n_events=10000,
                                   max_duration=10_000_000, preprocess_function_name="diff",
                                   height=240, width=320, num_tbins=5, batch_size=4,
                                   num_workers=0, load_labels=None, padding_mode="zeros")
    show = show_dataloader(loader, loader.height, loader.width, loader.batch_size,
                           loader.get_vis_func(), None)
    frames = sum(1 for _ in show)
    per_file, batches = collect(loader)
    assert frames == 5 * batches
    assert sum(1 for _ in loader.show()) == frames                    # the loader's own show()
    n = {p: ORACLE[os.path.basename(p)][0] for p in tutorial_files[:3]}
    for path, chunks in per_file.items():
        assert len(chunks) == -(-n[path] // 50_000)
        for (_, start, duration, *_), nxt in zip(chunks, chunks[1:] + [None]):
            assert duration > 0 and duration % 5 == 0
            if nxt is not None:
                assert nxt[1] == start + duration          # windows are contiguous


# ------------------------------------------------------------------------------ conservation
def test_delta_t_every_event_in_exactly_one_bin(recordings):
    delta_t, num_tbins, batch_size = 1000, 5, 3
    loader = CDProcessorDataLoader(recordings, "delta_t", delta_t, 0, None, "histo", num_tbins,
                                   batch_size, num_workers=2, height=HEIGHT // 2,
                                   width=WIDTH // 2,
                                   preprocess_kwargs={"max_incr_per_pixel": M / 4})
    per_file, batches = collect(loader)
    check_slots_and_keep_memory(per_file, recordings)
    plan = loader.plan()
    for i, path in enumerate(recordings):
        chunks = per_file[path]
        assert chunks[0][0] == plan.slot_of_stream(i)
        assert [c[1] for c in chunks] == [k * delta_t * num_tbins for k in range(len(chunks))]
        events = reader_events(path)
        n_bins = len(chunks) * num_tbins
        assert events["t"][-1] < n_bins * delta_t <= events["t"][-1] + delta_t * num_tbins
        got = np.concatenate([c[4] for c in chunks]) * M
        assert np.array_equal(got, np.round(got))
        assert np.array_equal(got.astype(np.int64), count_volume(events, delta_t, n_bins, k=1))
    # the batches do not depend on the worker count
    again, _ = collect(CDProcessorDataLoader(recordings, "delta_t", delta_t, 0, None, "histo",
                                             num_tbins, batch_size, num_workers=0,
                                             height=HEIGHT // 2, width=WIDTH // 2,
                                             preprocess_kwargs={"max_incr_per_pixel": M / 4}))
    for path in recordings:
        assert all(np.array_equal(a[4], b[4]) and a[:4] == b[:4]
                   for a, b in zip(per_file[path], again[path]))


def test_n_events_bins_hold_exactly_n_events(recordings):
    n, num_tbins = 37, 4
    loader = CDProcessorDataLoader(recordings, "n_events", 0, n, None, "histo", num_tbins, 2,
                                   num_workers=0, preprocess_kwargs={"max_incr_per_pixel": M})
    per_file, _ = collect(loader)
    check_slots_and_keep_memory(per_file, recordings)
    for path, chunks in per_file.items():
        events = reader_events(path)
        counts = np.concatenate([c[4] for c in chunks]) * M
        per_bin = counts.reshape(len(counts), -1).sum(axis=1).astype(np.int64)
        full, rest = divmod(len(events), n)
        expected = [n] * full + ([rest] if rest else [])
        expected += [0] * (len(per_bin) - len(expected))
        assert per_bin.tolist() == expected
        assert len(chunks) == -(-len(events) // (n * num_tbins))
        # bin i = events [i n, (i + 1) n), whatever their times
        for i in range(0, len(per_bin), 5):
            part = events[i * n:(i + 1) * n]
            ref = np.zeros((2, HEIGHT, WIDTH), np.int64)
            np.add.at(ref, (part["p"].astype(np.int64), part["y"].astype(np.int64),
                            part["x"].astype(np.int64)), 1)
            assert np.array_equal(counts[i].astype(np.int64), ref)
        # label windows: contiguous, multiples of T, cover the chunk's last event
        end = 0
        for k, (_, start, duration, *_rest) in enumerate(chunks):
            assert start == end and duration % num_tbins == 0 and duration > 0
            last_t = events["t"][min((k + 1) * n * num_tbins, len(events)) - 1]
            assert last_t <= start + duration
            end = start + duration


@pytest.mark.parametrize("batch_size, workers, n_files",
                         list(itertools.product(range(1, 6), range(1, 6), range(1, 6))))
def test_every_combination_reads_every_file(tiny_recordings, batch_size, workers, n_files):
    files = tiny_recordings[:n_files]
    loader = CDProcessorDataLoader(files, "delta_t", 100, 0, None, "histo", 2, batch_size,
                                   num_workers=workers)
    per_file, batches = collect(loader)
    check_slots_and_keep_memory(per_file, files)
    for i, path in enumerate(files):
        assert len(per_file[path]) == TINY_CHUNKS[i]


TINY_CHUNKS = [6, 2, 9, 1, 4]


@pytest.fixture(scope="module")
def tiny_recordings(tmp_path_factory):
    """Five tiny EVT2 recordings (16 x 8 sensor) lasting 6, 2, 9, 1 and 4 chunks of 2 x 100 us
    (EVT2 keeps t = 0 at 0 after time shifting)."""
    folder = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(1)
    paths = []
    for i, chunks in enumerate(TINY_CHUNKS):
        path = folder / f"tiny_{i}.raw"
        ev = _events(rng, 30, 200 * chunks, 8, 16, extra_t=(0, 200 * chunks - 1))
        with RawWriter(path, 8, 16, "evt2") as w:
            w.write(ev)
        assert reader_events(path)["t"][-1] == 200 * chunks - 1
        paths.append(str(path))
    return paths


# ------------------------------------------------------------------------------ errors
def test_a_corrupt_file_raises_in_the_main_process_naming_it(recordings, tmp_path):
    bad = tmp_path / "cut.raw"
    data = open(recordings[0], "rb").read()
    bad.write_bytes(data[:-1])                              # a truncated word
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF not really" * 10)
    for corrupt in (bad, garbage):
        files = [recordings[1], recordings[2], str(corrupt), recordings[3]]
        loader = CDProcessorDataLoader(files, "delta_t", 1000, 0, None, "histo", 5, 2,
                                       num_workers=2)
        with pytest.raises(Exception) as info:
            for _ in loader:
                pass
        assert str(corrupt) in str(info.value)
    with pytest.raises(FileNotFoundError):
        CDProcessorDataLoader([recordings[0], str(tmp_path / "missing.raw")], "delta_t", 1000, 0,
                              None, "histo", 5, 2, num_workers=0)


def test_arguments_are_checked(recordings):
    args = dict(files=recordings, delta_t=1000, n_events=0, max_duration=None,
                preprocess_function_name="histo", num_tbins=2, batch_size=2, num_workers=0)
    with pytest.raises(ValueError):
        CDProcessorDataLoader(**{**args, "mode": "mixed"})
    with pytest.raises(ValueError):
        CDProcessorDataLoader(**{**args, "mode": "n_events"})        # n_events=0
    with pytest.raises(ValueError):
        CDProcessorDataLoader(**{**args, "mode": "delta_t", "files": []})
    with pytest.raises(ValueError):
        CDProcessorDataLoader(**{**args, "mode": "delta_t", "preprocess_function_name": "nope"})


# ------------------------------------------------------------------------------ inputs and sizes
def test_mixed_inputs_with_a_precomputed_tensor_file(recordings, tmp_path):
    from evstream.preprocessing.hdf5 import write_to_hdf5
    raw = recordings[1]
    result = write_to_hdf5(raw, output_folder=str(tmp_path), delta_t=1000, preprocess="histo",
                           preprocess_kwargs={"max_incr_per_pixel": M})
    h5 = result.outputs[0]
    files = [raw, h5, recordings[2]]
    loader = CDProcessorDataLoader(files, "delta_t", 1000, 0, None, "histo", 5, 3, num_workers=0,
                                   preprocess_kwargs={"max_incr_per_pixel": M})
    per_file, _ = collect(loader)
    check_slots_and_keep_memory(per_file, files)
    a, b = per_file[raw], per_file[h5]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[1:3] == y[1:3]
        assert np.array_equal(x[4], y[4])
    # n_events mode: the tensor file's rows are bins of n events (its last, short row dropped)
    nev = write_to_hdf5(raw, output_folder=str(tmp_path / "nev"), preprocess="histo",
                        mode="n_events", n_events=50, delta_t=0,
                        preprocess_kwargs={"max_incr_per_pixel": M}).outputs[0]
    loader = CDProcessorDataLoader([raw, nev], "n_events", 0, 50, None, "histo", 4, 2,
                                   num_workers=0, preprocess_kwargs={"max_incr_per_pixel": M})
    per_file, _ = collect(loader)
    a, b = per_file[raw], per_file[nev]
    assert len(b) in (len(a), len(a) - 1)
    for x, y in zip(a[:-1], b):
        assert x[1:3] == y[1:3] and np.array_equal(x[4], y[4])
    # a mismatching delta_t is refused naming the file
    loader = CDProcessorDataLoader([h5], "delta_t", 2000, 0, None, "histo", 5, 1, num_workers=0)
    with pytest.raises(ValueError, match="delta_t"):
        next(iter(loader))


def test_resizing_rules(recordings):
    path = recordings[0]
    events = reader_events(path)
    events = events[events["t"] < 5000]
    events["t"] -= 0
    full = CDProcessor(HEIGHT, WIDTH, 5, "histo", 0)(events, 5000, copy=True)
    half = CDProcessor(HEIGHT // 2, WIDTH // 2, 5, "histo", 1)(events, 5000, copy=True)

    def first(height, width):
        it = CDProcessorIterator(path, "histo", delta_t=1000, num_tbins=5, height=height,
                                 width=width)
        return next(it).numpy()

    assert np.array_equal(first(HEIGHT // 2, WIDTH // 2), half)        # exact, event domain
    assert np.array_equal(first(HEIGHT, WIDTH), full)
    area = F.interpolate(torch.from_numpy(full), size=(30, 40), mode="area").numpy()
    assert np.allclose(first(30, 40), area)
    up = F.interpolate(torch.from_numpy(full), size=(72, 96), mode="bilinear",
                       align_corners=True).numpy()
    assert np.allclose(first(72, 96), up)
    assert resize_plan((720, 1280), (360, 640)) == (1, (360, 640), None)
    assert resize_plan((720, 1280), (240, 320)) == (1, (360, 640), "area")
    assert resize_plan((480, 640), (240, 320)) == (1, (240, 320), None)


# ------------------------------------------------------------------------------ labels
@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A RAW recording with a _bbox.npy beside it: 60 boxes, some on chunk and bin edges."""
    folder = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(11)
    path = folder / "scene.raw"
    with RawWriter(path, HEIGHT, WIDTH, "evt2") as w:          # EVT2: times are kept as written
        w.write(_events(rng, 4000, 30_000))
    t = np.concatenate([rng.integers(1, 29_000, 50), [5000, 10000, 15000, 1000, 2000, 4000,
                                                     6000, 25000, 29_999, 1]])
    boxes = np.zeros(len(t), dtype=EventBbox)
    boxes["t"] = np.sort(t)
    boxes["x"] = np.arange(len(t)) % 8 * 8
    boxes["y"] = np.arange(len(t)) // 8 % 6 * 8
    boxes["w"] = boxes["h"] = 6
    boxes["class_id"] = np.arange(len(t)) % 2
    boxes["track_id"] = np.arange(len(t))
    np.save(folder / "scene_bbox.npy", boxes)
    (folder / "label_map.json").write_text(json.dumps({"0": "car", "1": "pedestrian"}))
    return str(path), boxes, str(folder / "label_map.json")


def box_loader(metadata, start, duration, tensor):
    num_tbins = tensor.shape[0]
    per_bin = split_boxes(load_box_events(metadata, start, duration), start,
                          duration // num_tbins, num_tbins)
    return per_bin, np.array([len(b) > 0 for b in per_bin])


def test_labels_each_box_in_exactly_one_bin(labelled):
    path, boxes, _ = labelled
    delta_t, num_tbins = 1000, 5
    loader = CDProcessorDataLoader([path], "delta_t", delta_t, 0, None, "histo",
                                   num_tbins, 2, num_workers=0, load_labels=box_loader)
    per_file, _ = collect(loader)
    seen = []
    for _, start, duration, _, _, labels, mask in per_file[path]:
        for b, bin_boxes in enumerate(labels):
            t0 = start + b * delta_t
            assert ((bin_boxes["t"] > t0) & (bin_boxes["t"] <= t0 + delta_t)).all()
            assert mask[b] == (len(bin_boxes) > 0)
            seen.extend(bin_boxes["track_id"].tolist())
    end = per_file[path][-1][1] + per_file[path][-1][2]
    expected = boxes["track_id"][(boxes["t"] > 0) & (boxes["t"] <= end)]
    assert sorted(seen) == sorted(expected.tolist())


def test_load_boxes_through_the_protocol(labelled):
    path, _, label_map = labelled
    lookup = create_class_lookup(label_map, ["pedestrian", "car"])
    loader = CDProcessorDataLoader([path], "n_events", 0, 500, None, "histo", 4, 1,
                                   num_workers=0, load_labels=partial(load_boxes,
                                                                      class_lookup=lookup))
    batch = next(iter(loader))
    assert len(batch["labels"]) == 4
    assert all(lab[0].dtype == EventBbox for lab in batch["labels"])
    assert batch["frame_is_labeled"].shape == (4, 1)


# ------------------------------------------------------------------------------ other modes
def test_data_padding_mode_and_a_single_slot_per_file(recordings):
    loader = CDProcessorDataLoader(recordings[:3], "delta_t", 2000, 0, None, "diff", 5, 2,
                                   num_workers=0, padding_mode="data")
    per_file, batches = collect(loader)
    assert set(per_file) == set(recordings[:3])
    # slot 0 plays evt3 (23.5 ms -> 3 chunks) + dat (17 ms -> 2), slot 1 evt2 (41.5 ms -> 5)
    assert batches == 5
    for path, chunks in per_file.items():
        assert len({c[0] for c in chunks}) == 1


def test_transforms_are_the_same_for_every_chunk_of_a_recording(recordings):
    flip = partial(torch.flip, dims=[-1])
    plain = CDProcessorDataLoader(recordings[:2], "delta_t", 1000, 0, None, "histo", 5, 2,
                                  num_workers=0)
    flipped = CDProcessorDataLoader(recordings[:2], "delta_t", 1000, 0, None, "histo", 5, 2,
                                    num_workers=0, transforms=flip)
    for a, b in zip(plain, flipped):
        assert torch.equal(torch.flip(a["inputs"], dims=[-1]), b["inputs"])


def test_cd_processor_iterator(recordings):
    path = recordings[1]
    events = reader_events(path)
    it = CDProcessorIterator(path, "histo", delta_t=1000, num_tbins=5,
                             preprocess_kwargs={"max_incr_per_pixel": M})
    assert it.get_size() == (HEIGHT, WIDTH) and it.get_time() == 0
    tensors = []
    for k, tensor in enumerate(it):
        assert tensor.shape == (5, 2, HEIGHT, WIDTH) and tensor.dtype == torch.float32
        assert it.get_time() == (k + 1) * 5000
        tensors.append(tensor.numpy())
    got = np.concatenate(tensors) * M
    assert np.array_equal(got.astype(np.int64), count_volume(events, 1000, len(got)))
    wrapped = CDProcessorIterator.from_iterator(EventsIterator(path, delta_t=5000), "histo",
                                                num_tbins=5,
                                                preprocess_kwargs={"max_incr_per_pixel": M})
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(wrapped, tensors))
    by_count = CDProcessorIterator(path, "histo", mode="n_events", n_events=100, num_tbins=3,
                                   preprocess_kwargs={"max_incr_per_pixel": M})
    sums = np.concatenate([t.numpy() for t in by_count]).reshape(-1, 2 * HEIGHT * WIDTH).sum(1)
    assert np.round(sums * M).astype(int).tolist()[:-3] == [100] * (len(sums) - 3)
    assert by_count.get_time() >= events["t"][-1]
    assert HDF5Iterator.__module__ == "evstream.data.hdf5_iterator"


def test_samples_every_event_in_exactly_one_bin():
    """Conservation on the real recordings: 640x480 EVT 2.0 samples and the N-CARS DAT (no
    size in its header) at 640x480, the 1280x720 EVT 3.0 sample halved in the event domain."""
    groups = [(["expelliarmus_evt2_sample.raw", "faery_evt2.raw", "tonic_sample_ncars.dat"],
               480, 640, 0), (["expelliarmus_evt3_sample.raw"], 360, 640, 1)]
    for names, height, width, k in groups:
        files = [str(sample(n)) for n in names]
        loader = CDProcessorDataLoader(files, "delta_t", 2000, 0, None, "histo", 5, 2,
                                       num_workers=0, height=height, width=width,
                                       preprocess_kwargs={"max_incr_per_pixel": M / 4 ** k})
        per_file, _ = collect(loader)
        check_slots_and_keep_memory(per_file, files)
        for name, path in zip(names, files):
            got = np.concatenate([c[4] for c in per_file[path]]) * M
            assert int(round(got.sum())) == ORACLE[name][0]
            counts = np.round(got).astype(np.int64)
            events = reader_events(path)
            # per (bin, polarity) totals and per (polarity, pixel) totals, both exact
            per_bin = np.bincount(events["t"] // 2000 * 2 + events["p"], minlength=2 * len(got))
            assert np.array_equal(counts.sum(axis=(2, 3)).ravel(), per_bin)
            per_pixel = np.zeros((2, height, width), np.int64)
            np.add.at(per_pixel, (events["p"].astype(np.int64), events["y"].astype(np.int64) >> k,
                                  events["x"].astype(np.int64) >> k), 1)
            assert np.array_equal(counts.sum(axis=0), per_pixel)
