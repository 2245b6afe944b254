"""RVT's box filters and label frames, case by case (hand-computed expectations)."""

import numpy as np
import pytest

from evstream.errors import FileFormatError, RvtRuleError
from evstream.rvt.config import GEN1, GEN4
from evstream.rvt.labels import (base_period, check_boxes, crop_to_frame, filter_boxes,
                                 frame_labels, label_frames, load_box_file, packed_dtype)
from rvt_data import boxes


def one(x, y, w, h, c=0, t=200_000):
    return boxes([(t, x, y, w, h, c)])


def test_crop_examples():
    b = crop_to_frame(one(-10, 5, 40, 20), 240, 304)
    assert (b["x"][0], b["w"][0]) == (0, 30)
    b = crop_to_frame(one(-3.5, 5, 20.25, 20), 240, 304)
    assert (b["x"][0], b["w"][0]) == (0, np.float32(16.75))
    b = crop_to_frame(one(280, 220, 50, 40), 240, 304)          # right/bottom edge at W-1, H-1
    assert (b["w"][0], b["h"][0]) == (23, 19)
    assert len(crop_to_frame(one(303, 5, 10, 10), 240, 304)) == 0   # flat after the crop
    with pytest.raises(RvtRuleError):
        crop_to_frame(one(10, 5, -4, 10), 240, 304)


def test_clip_before_size_filter_gen1():
    assert len(filter_boxes(one(280, 220, 50, 40), GEN1, False)) == 0   # 23^2 + 19^2 = 890 < 900


@pytest.mark.parametrize("w,h,kept", [(18, 24, True), (10, 40, True), (9.5, 40, False),
                                      (40, 9.99, False), (21, 21, False), (22, 22, True)])
def test_psee_limits(w, h, kept):
    assert (len(filter_boxes(one(10, 10, w, h), GEN1, False)) == 1) == kept


@pytest.mark.parametrize("w,split_train,kept", [(273, True, True), (274, True, False),
                                                (290, False, True)])
def test_faulty_filter_train_only(w, split_train, kept):
    assert (len(filter_boxes(one(0, 10, w, 20), GEN1, split_train)) == 1) == kept


def test_gen4_class_and_conservative_size():
    b = boxes([(200_000, 10, 10, 50, 50, c) for c in range(7)])
    out = filter_boxes(b, GEN4, False)
    assert out["class_id"].tolist() == [0, 1, 2]          # trucks, buses, signs, lights dropped
    assert len(filter_boxes(one(10, 10, 5, 5), GEN4, False)) == 1
    assert len(filter_boxes(one(10, 10, 4.9, 50), GEN4, False)) == 0
    assert len(filter_boxes(one(0, 10, 1152, 50), GEN4, True)) == 1
    assert len(filter_boxes(one(0, 10, 1153, 50), GEN4, True)) == 0
    assert len(filter_boxes(one(10, 10, 50, 40, c=2), GEN1, False)) == 1   # gen1: no class filter


def test_jitter_both_sides_of_2ms():
    B = 250_000
    t = np.array([100_000, 352_000, 604_001, 850_000, 1_095_999])
    frames, counts = label_frames(t, B)
    # 352000: +2000 from the grid, accepted; 604001: +2001 from 352000 + B, rejected; 850000 is
    # measured from the last *accepted* frame (352000): d = 498000, c = 2, -2000: accepted;
    # 1095999: d = 245999 from 850000, -4001: rejected
    assert frames.tolist() == [100_000, 352_000, 850_000]
    assert counts.tolist() == [1, 2]
    assert label_frames(np.array([100_000, 350_000 - 2000]), B)[0].tolist() == [100_000, 348_000]
    assert label_frames(np.array([100_000, 350_000 - 2001]), B)[0].tolist() == [100_000]


def test_labels_before_100ms_are_never_frames():
    frames, _ = label_frames(np.array([0, 50_000, 99_999, 100_000, 350_000]), 250_000)
    assert frames.tolist() == [100_000, 350_000]
    frames, _ = label_frames(np.array([50_000, 300_000]), 250_000)
    assert frames.tolist() == [300_000]           # 300000 - 50000 is on the grid, but 50000 is no frame
    with pytest.raises(RvtRuleError, match="100000"):
        label_frames(np.array([10, 99_999]), 250_000)


def test_label_just_after_a_frame_aborts():
    with pytest.raises(RvtRuleError, match="c > 0"):
        label_frames(np.array([100_000, 101_000]), 250_000)
    frames, _ = label_frames(np.array([100_000, 102_001]), 250_000)   # 2001 µs: just rejected
    assert frames.tolist() == [100_000]


def test_frames_too_close_abort():
    with pytest.raises(RvtRuleError, match="98000"):
        label_frames(np.array([100_000, 198_000]), 97_000)
    assert label_frames(np.array([100_000, 198_001]), 98_001)[0].tolist() == [100_000, 198_001]


def test_gen4_base_period():
    t60 = 100_000 + 16_667 * np.arange(10)
    assert base_period(t60, GEN4) == int(6 * 16_667)
    t30 = 100_000 + 33_333 * np.arange(10)
    assert base_period(t30, GEN4) == int(3 * 33_333)
    # even count of gaps: median is the mean of the two middle values
    t = np.cumsum([100_000, 16_600, 16_600, 16_700, 16_700])
    assert base_period(t, GEN4) == int(6 * 16_650)
    with pytest.raises(RvtRuleError, match="45 Hz"):
        base_period(100_000 + 22_222 * np.arange(10), GEN4)
    assert base_period(t60, GEN1) == 250_000


def test_frame_labels_contents():
    rows = [(50_000, 1, 1, 40, 40, 0), (100_000, 10, 10, 40, 40, 1, 7, 0.5),
            (100_000, 20, 20, 40, 40, 0, 8, 0.25), (101_000 + 249_000, 30, 30, 40, 40, 1),
            (480_000, 30, 30, 40, 40, 1)]
    fl = frame_labels(boxes(rows), GEN1, False)
    assert fl.frames.tolist() == [100_000, 350_000]
    assert fl.label_index.tolist() == [0, 2]
    assert fl.labels.dtype == packed_dtype(boxes([]).dtype) and fl.labels.dtype.itemsize == 36
    assert fl.labels["track_id"].tolist() == [7, 8, 0]           # passed through, row order kept
    assert fl.labels["class_confidence"].tolist() == [0.5, 0.25, 1.0]
    assert fl.boxes_of_frame(1)["t"].tolist() == [350_000]
    assert frame_labels(boxes([(200_000, 10, 10, 5, 5, 0)]), GEN1, False) is None


def test_box_file_checks(tmp_path):
    legacy = np.zeros(2, dtype=[("ts", "<i8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"),
                                ("h", "<f4"), ("class_id", "<u4")])
    np.save(tmp_path / "l_bbox.npy", legacy)
    with pytest.raises(FileFormatError, match="'ts'"):
        load_box_file(tmp_path / "l_bbox.npy")
    with pytest.raises(FileFormatError, match="sorted"):
        check_boxes(boxes([(300_000, 1, 1, 40, 40, 0), (200_000, 1, 1, 40, 40, 0)]))
