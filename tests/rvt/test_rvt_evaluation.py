"""RVT's evaluation protocol (the RVT reference, §6) through evstream.metrics.evaluate_rvt, on
hand-computed cases: class names and ids per dataset, the strict 500 ms skip, the 50 ms time
matching of predictions to ground-truth times, the gen4 filter halved with downsample_by_2, and
all zeros without detections."""

import numpy as np
import pytest

from evstream.io import EventBbox
from evstream.metrics import evaluate_rvt


def box(t, x, y, w, h, class_id, score=1.0):
    b = np.zeros(1, EventBbox)
    b["t"], b["x"], b["y"], b["w"], b["h"] = t, x, y, w, h
    b["class_id"], b["class_confidence"] = class_id, score
    return b


def cat(*parts):
    return np.concatenate(parts).astype(EventBbox)


def test_gen1_perfect_detection_and_class_ids():
    gt = [cat(box(600_000, 10, 10, 40, 40, 0), box(600_000, 100, 10, 30, 60, 1))]
    assert evaluate_rvt(gt, [gt[0].copy()], "gen1", 240, 304)["AP"] == pytest.approx(1.0)
    swapped = gt[0].copy()
    swapped["class_id"] = 1 - swapped["class_id"]       # car <-> pedestrian
    assert evaluate_rvt(gt, [swapped], "gen1", 240, 304)["AP"] == 0.0


def test_gen4_has_three_classes():
    gt = [cat(box(600_000, 10, 10, 80, 80, 2))]         # class 2 = car in gen4 (3 classes)
    assert evaluate_rvt(gt, [gt[0].copy()], "gen4", 720, 1280)["AP"] == pytest.approx(1.0)


def test_first_half_second_is_skipped_strictly():
    gt = [cat(box(500_000, 10, 10, 40, 40, 0), box(500_001, 100, 10, 40, 40, 0))]
    det = [cat(box(500_001, 100, 10, 40, 40, 0))]       # only the kept ground truth is found
    assert evaluate_rvt(gt, det, "gen1", 240, 304)["AP_50"] == pytest.approx(1.0)


@pytest.mark.parametrize("dt_time,found", [(650_000, True), (550_000, True), (549_999, False),
                                           (650_001, False)])
def test_predictions_within_50_ms_of_a_ground_truth_time(dt_time, found):
    gt = [cat(box(600_000, 10, 10, 40, 40, 0))]
    det = [cat(box(dt_time, 10, 10, 40, 40, 0))]
    assert evaluate_rvt(gt, det, "gen1", 240, 304)["AP_50"] == (pytest.approx(1.0) if found else 0.0)


def test_gen4_filter_halved_at_half_resolution():
    gt = [cat(box(600_000, 10, 10, 25, 25, 0))]         # diagonal 35.4, side 25
    det = [gt[0].copy()]
    assert evaluate_rvt(gt, det, "gen4", 360, 640, downsample_by_2=True)["AP"] == pytest.approx(1.0)
    assert evaluate_rvt(gt, det, "gen4", 720, 1280)["AP"] == 0.0   # 60 / 20 drops it


def test_no_detections_gives_zeros():
    gt = [cat(box(600_000, 10, 10, 40, 40, 0))]
    m = evaluate_rvt(gt, [np.zeros(0, EventBbox)], "gen1", 240, 304)
    assert set(m) == {"AP", "AP_50", "AP_75", "AP_S", "AP_M", "AP_L"}
    assert all(v == 0.0 for v in m.values())
