"""Box processing, drawing and transforms (metavision_api.md §10–§12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evstream.data import box_processing as box_api
from evstream.data.scheduler import FileMetadata
from evstream.data.transformations import stable_seed, transform_ev_tensor, transform_sequence
from evstream.detection_tracking.display_frame import COLORS, draw_box_events
from evstream.errors import ArgumentError, MissingFileError
from evstream.io import EventBbox

from seqloader_data import make_boxes, save_boxes, tensor_rows, write_label_map, write_tensor_file


def boxes_xywh(rows, t=0):
    out = np.zeros(len(rows), EventBbox)
    for i, (x, y, w, h) in enumerate(rows):
        out[i]["x"], out[i]["y"], out[i]["w"], out[i]["h"] = x, y, w, h
    out["t"] = t
    return out


# ---------------------------------------------------------------- NMS, by hand
def test_nms_hand_computed():
    # A and B: 10x10 px (+1 convention) overlapping on 5 columns -> IoU 50 / 150 = 1/3;
    # A and C overlap on 9 columns -> IoU 90 / 110 = 0.818; B and C on 6 -> 60 / 140 = 0.43
    boxes = boxes_xywh([(0, 0, 9, 9), (5, 0, 9, 9), (1, 0, 9, 9)])
    assert list(box_api.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 1]
    assert list(box_api.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3)) == [0]
    assert list(box_api.nms(boxes, np.array([0.5, 0.8, 0.9]), 0.5)) == [1, 2]
    assert list(box_api.nms(boxes, np.array([0.5, 0.8, 0.9]), 0.42)) == [2]
    assert list(box_api.nms(boxes[:0], np.zeros(0))) == []


def test_nms_by_class_uses_the_threshold():
    boxes = boxes_xywh([(0, 0, 9, 9), (5, 0, 9, 9), (5, 0, 9, 9)])
    boxes["class_id"] = [1, 1, 2]
    scores = np.array([0.9, 0.8, 0.7])
    assert list(box_api.nms_by_class(boxes, scores, 0.5)) == [0, 1, 2]
    assert list(box_api.nms_by_class(boxes, scores, 0.3)) == [0, 2]     # original: always 0.5


# ---------------------------------------------------------------- classes
def test_create_class_lookup_example(tmp_path):
    path = write_label_map(tmp_path / "lm.json", {"0": "pedestrian", "1": "two wheeler", "2": "car",
                                                   "3": "truck"})
    np.testing.assert_array_equal(box_api.create_class_lookup(path, ["car", "pedestrian"]),
                                  [2, -1, 1, -1])
    np.testing.assert_array_equal(box_api.create_class_lookup(path), [1, 2, 3, 4])
    with_empty = write_label_map(tmp_path / "e.json", {"0": "empty", "2": "car"})
    np.testing.assert_array_equal(box_api.create_class_lookup(with_empty), [-1, -1, 1])
    with pytest.raises(ArgumentError):
        box_api.create_class_lookup(path, ["bicycle"])
    with pytest.raises(ArgumentError):
        box_api.create_class_lookup(path, ["empty"])
    with pytest.raises(MissingFileError):
        box_api.create_class_lookup(tmp_path / "none.json")


def test_filter_boxes():
    boxes = boxes_xywh([(0, 0, 5, 5)] * 4)
    boxes["class_id"] = [0, 1, 2, 3]
    lookup = np.array([2, -1, 1, -1])
    kept = box_api.filter_boxes(boxes, lookup, [], False)
    assert list(kept["class_id"]) == [2, 1]
    assert list(box_api.filter_boxes(boxes, lookup, [2], False)["class_id"]) == [2]
    ignored = box_api.filter_boxes(boxes, lookup, [2], True)
    assert list(ignored["class_id"]) == [2, 0xFFFFFFFF]
    with pytest.raises(ArgumentError):
        box_api.filter_boxes(boxes, np.array([0, 1, 1, 1]), [], False)


# ---------------------------------------------------------------- geometry
def test_clip_rescale_and_vectors():
    boxes = boxes_xywh([(-10, -5, 30, 20), (630, 470, 20, 20), (100, 100, 2, 50)])
    kept = box_api.clip_boxes(boxes, 640, 480)
    assert kept[["x", "y", "w", "h"]].tolist() == [(0, 0, 20, 15), (630, 470, 10, 10)]
    box_api.rescale_boxes(kept, 640, 480, 320, 240)
    assert kept[["x", "y", "w", "h"]].tolist() == [(0, 0, 10, 7.5), (315, 235, 5, 5)]
    kept["class_id"], kept["track_id"] = [3, 4], [7, 8]
    vec = box_api.bboxes_to_box_vectors(kept)
    assert vec.dtype == np.float32
    np.testing.assert_array_equal(vec, [[0, 0, 10, 7.5, 3, 7], [315, 235, 320, 240, 4, 8]])
    back = box_api.box_vectors_to_bboxes(torch.from_numpy(vec[:, :4]), vec[:, 4], ts=42)
    assert back.dtype == EventBbox and list(back["t"]) == [42, 42]
    assert list(back["track_id"]) == [0, 1] and list(back["class_confidence"]) == [0, 0]
    np.testing.assert_array_equal(back[["x", "y", "w", "h"]].tolist(),
                                  kept[["x", "y", "w", "h"]].tolist())


# ---------------------------------------------------------------- time windows
def test_split_boxes_bins_are_left_open_right_closed():
    boxes = make_boxes([1000, 1001, 1050, 1051, 1100, 1150, 1151], dx=300)
    bins = box_api.split_boxes(boxes, batch_start_time=1000, delta_t=50, num_tbins=3)
    assert [list(b["t"]) for b in bins] == [[1001, 1050], [1051, 1100], [1150]]
    # overlapping boxes in one bin: the later one wins
    same = make_boxes([10, 20, 30])
    assert list(box_api.split_boxes(same, 0, 50, 1)[0]["t"]) == [30]
    with pytest.raises(ArgumentError):
        box_api.split_boxes(boxes, 0)


def test_boxes_on_every_boundary_are_counted_once(tmp_path):
    """Chunks of 3 x 50 ms: every box exactly on a chunk or bin boundary lands in exactly one
    (chunk, bin), the bin that ends at it (the original loses those on chunk boundaries)."""
    times = np.arange(50_000, 900_001, 50_000)
    save_boxes(tmp_path / "rec_bbox.npy", make_boxes(times, x=10, y=10, w=10, h=10))
    meta = FileMetadata(str(tmp_path / "rec.h5"), 900_000, 50_000, 3)
    found = []
    for start in range(0, 900_000, 150_000):
        chunk = box_api.load_box_events(meta, start, 150_000)
        bins = box_api.split_boxes(chunk, start, 50_000, 3)
        for b, arr in enumerate(bins):
            for t in arr["t"]:
                assert start + b * 50_000 < t <= start + (b + 1) * 50_000
                found.append(int(t))
    assert sorted(found) == list(times)


def test_load_box_events_legacy_and_unsorted(tmp_path):
    boxes = make_boxes([300, 100, 200], dx=50)
    save_boxes(tmp_path / "old_bbox.npy", boxes, legacy=True)
    meta = FileMetadata(str(tmp_path / "old_td.dat"), 1000, 100, 1)
    loaded = box_api.load_box_events(meta, 0, 1000)
    assert loaded.dtype == EventBbox
    assert list(loaded["t"]) == [100, 200, 300]
    assert np.allclose(loaded["class_confidence"], 0.9) and list(loaded["track_id"]) == [1, 2, 0]
    loaded["class_id"] = 99          # the caller's copy: the file is untouched
    assert list(box_api.load_box_events(meta, 100, 200)["class_id"]) == [2, 2]
    assert len(box_api.load_box_events(meta, 300, 10)) == 0
    save_boxes(tmp_path / "empty_bbox.npy", make_boxes([]))
    empty = box_api.load_box_events(FileMetadata(str(tmp_path / "empty.raw"), 1, 1, 1), 0, 10)
    assert empty.dtype == EventBbox and len(empty) == 0
    with pytest.raises(MissingFileError):
        box_api.load_box_events(FileMetadata(str(tmp_path / "nobox.h5"), 1, 1, 1), 0, 10)


def test_could_frame_contain_valid_gt_documented_examples():
    def fmt(a):
        return "".join("T" if v else "F" for v in a)
    got = [fmt(box_api.could_frame_contain_valid_gt(bst, 250, 120, 5)) for bst in (0, 250, 500)]
    assert got == ["FFTFT", "FFTFT", "FTFFT"]
    got = [fmt(box_api.could_frame_contain_valid_gt(bst, 250, 100, 5)) for bst in (0, 250, 500)]
    assert got == ["FTFTF", "TFTFT", "FTFTF"]
    assert box_api.could_frame_contain_valid_gt(0, 250, 100, 5).dtype == bool


def test_filter_empty_tensor():
    array = np.zeros((3, 2, 40, 40), np.float32)
    array[1, 0, 10:20, 10:20] = 1                        # activity in bin 1 only
    boxes = boxes_xywh([(20, 20, 20, 20), (60, 60, 20, 20), (0, 0, 0, 10)])
    boxes["t"] = [100, 100, 100]                         # end of bin 1 with 50 us bins
    assert list(box_api.filter_empty_tensor(array, boxes, shift=1, time_per_bin=50)) == [1, 2]
    boxes["t"] = [150, 150, 150]                         # bin 2, the 100 us window includes bin 1
    assert list(box_api.filter_empty_tensor(array, boxes, shift=1, time_per_bin=50)) == [1, 2]
    boxes["t"] = [50, 50, 50]                            # bin 0: nothing there
    assert list(box_api.filter_empty_tensor(array, boxes, shift=1, time_per_bin=50)) == [0, 1, 2]
    assert list(box_api.filter_empty_tensor(array, boxes, shift=1, time_per_bin=50,
                                            last_time_to_filter=10)) == []


def test_load_boxes(tmp_path):
    h5 = write_tensor_file(tmp_path / "rec.h5", tensor_rows(6))
    lm = write_label_map(tmp_path / "label_map_dictionary.json")
    lookup = box_api.create_class_lookup(lm, ["car", "pedestrian"])
    boxes = make_boxes([50_000, 100_000, 100_000, 140_000, 150_000], dx=0)
    boxes["x"] = [200, 200, 700, 900, 1200]              # sensor coordinates (1280 wide)
    boxes["class_id"] = [2, 0, 1, 5, 2]                  # car, pedestrian, two wheeler, empty, car
    boxes["w"][4] = 300                                  # clipped to 80 px at the right edge
    save_boxes(tmp_path / "rec_bbox.npy", boxes)
    meta = FileMetadata(h5, 300_000, 50_000, 3)
    tensor = torch.from_numpy(tensor_rows(3))
    labels, labeled = box_api.load_boxes(meta, 0, 150_000, tensor, class_lookup=lookup)
    assert labeled.dtype == bool and list(labeled) == [True, True, True]
    assert [list(b["class_id"]) for b in labels] == [[1], [2], []]
    # rescaled to the 640 x 360 tensor
    assert labels[0][["x", "y", "w", "h"]].tolist() == [(100, 125, 100, 75)]
    # the last box (x 1200, clipped to 80 px wide) sits on no activity and t <= 500 ms: dropped
    big = box_api.load_boxes(meta, 0, 150_000, tensor, class_lookup=lookup,
                             min_box_diag_network=200)
    assert [len(b) for b in big[0]] == [0, 0, 0]


# ---------------------------------------------------------------- drawing
def test_draw_box_events():
    frame = np.zeros((100, 120, 3), np.uint8)
    boxes = make_boxes([1], x=10, y=20, w=50, h=40, class_id=1)
    out = draw_box_events(frame, boxes, ["background", "car"])
    assert out is frame
    color = COLORS[60 % 255]
    assert tuple(frame[20, 30]) == tuple(color)           # top edge
    assert tuple(frame[40, 10]) == tuple(color)           # left edge
    assert frame[40, 35].sum() == 0 or tuple(frame[40, 35]) == tuple(color)
    forced = draw_box_events(np.zeros((100, 120, 3), np.uint8), boxes, ["bg", "car"],
                             force_color=(1, 2, 3), draw_score=False)
    assert tuple(forced[20, 30]) == (1, 2, 3)
    # nothing to draw: unchanged; out-of-frame corners are clipped; unknown ids are fine
    blank = np.zeros((10, 10, 3), np.uint8)
    assert draw_box_events(blank, float("nan"), []) is blank and not blank.any()
    assert draw_box_events(blank, torch.empty(0), []) is blank and not blank.any()
    wild = make_boxes([1], x=-50, y=-50, w=500, h=500, class_id=0xFFFFFFFF)
    draw_box_events(blank, wild, ["bg"])
    history = {}
    tracks = make_boxes([1, 2], x=10, y=10, w=20, h=20, dx=30)
    tracks["track_id"] = 5
    draw_box_events(np.zeros((100, 120, 3), np.uint8), tracks, ["bg", "a", "b", "car"],
                    color_from="track_id", dic_history=history)
    assert len(history[5]) == 2
    with pytest.raises(ValueError):
        draw_box_events(blank, boxes, [], confidence_field="score")


# ---------------------------------------------------------------- transforms
def flip_if_heads(plane):
    """A random transform (torch RNG): horizontal flip with probability 1/2."""
    return torch.flip(plane, dims=[-1]) if torch.rand(1).item() < 0.5 else plane


def test_transform_sequence_is_consistent_and_stable():
    assert stable_seed("a.h5@0", 0) == stable_seed("a.h5@0", 0) != stable_seed("a.h5@0", 1)
    base = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 2, 3, 4)
    meta = FileMetadata("some/file.h5", 1, 1, 2)
    torch.manual_seed(123)
    before = torch.rand(1)
    outs = {}
    for base_seed in range(8):
        out = transform_sequence(base.clone(), meta, flip_if_heads, base_seed=base_seed)
        flipped = [torch.equal(out[t, c], torch.flip(base[t, c], dims=[-1]))
                   for t in range(2) for c in range(2)]
        assert all(flipped) or not any(flipped)          # the same for every plane
        outs[base_seed] = flipped[0]
        again = transform_sequence(base.clone(), meta, flip_if_heads, base_seed=base_seed)
        assert torch.equal(out, again)
    assert set(outs.values()) == {True, False}           # the seed matters
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), before)            # the caller's RNG is untouched
    assert transform_sequence(base, meta, None) is base
    out = transform_ev_tensor(base.clone(), "x.h5", lambda p: p * 2)
    assert torch.equal(out, base * 2)
