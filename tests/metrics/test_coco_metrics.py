"""COCO metrics: hand-computed cases, pycocotools called directly, the toolbox's time matching
and filters, faster-coco-eval agreeing with pycocotools, and `evstream evaluate`."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from evstream.datasets import GEN1_FILTER, GEN4_FILTER, PaperBoxFilter
from evstream.errors import ArgumentError, EventArrayError, FileFormatError, MissingFileError
from evstream.io import EventBbox
from evstream.metrics import (COCO_METRIC_NAMES, coco_metrics_from_frames, evaluate_detection,
                              evaluate_folders, evaluate_rvt, match_boxes_by_time, rvt_box_filter)


def boxes(rows, t=0):
    """EventBbox from (x, y, w, h, class_id[, score[, t]]) rows."""
    out = np.zeros(len(rows), EventBbox)
    for i, r in enumerate(rows):
        out[i]["x"], out[i]["y"], out[i]["w"], out[i]["h"], out[i]["class_id"] = r[:5]
        out[i]["class_confidence"] = r[5] if len(r) > 5 else 1.0
        out[i]["t"] = r[6] if len(r) > 6 else t
    return out


CLASSES = ("car", "pedestrian")


BACKENDS = ["pycocotools", "faster_coco_eval"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_perfect_detection_scores_one_everywhere_it_can(backend):
    gt = [boxes([(10, 10, 100, 100, 0)])]
    m = coco_metrics_from_frames(gt, [boxes([(10, 10, 100, 100, 0, 0.9)])], 240, 304, CLASSES,
                                 backend)
    for k in ("AP", "AP_50", "AP_75", "AP_L", "AR_1", "AR_100", "AR_L"):
        assert m[k] == pytest.approx(1.0, abs=1e-12), k
    assert m["AP_S"] == m["AP_M"] == -1.0          # no ground truth in those areas
    assert tuple(m) == COCO_METRIC_NAMES


@pytest.mark.parametrize("backend", BACKENDS)
def test_iou_062_counts_at_three_of_ten_thresholds(backend):
    # IoU = 100*62 / (100*100) = 0.62: a match at 0.50, 0.55, 0.60 only -> AP = 3/10
    m = coco_metrics_from_frames([boxes([(0, 0, 100, 100, 1)])],
                                 [boxes([(0, 0, 100, 62, 1, 0.5)])], 240, 304, CLASSES, backend)
    assert m["AP"] == pytest.approx(0.3, abs=1e-12)
    assert m["AP_50"] == pytest.approx(1.0, abs=1e-12) and m["AP_75"] == 0.0
    assert m["AR_100"] == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_101_point_interpolation_is_not_voc(backend):
    # two ground truths, a true positive (0.9) then a false positive (0.8): precision 1 up to
    # recall 0.5, nothing beyond -> 51 of the 101 recall points -> 51/101 (VOC all-point: 0.5)
    gt = [boxes([(0, 0, 50, 50, 0), (200, 100, 50, 50, 0)])]
    dt = [boxes([(0, 0, 50, 50, 0, 0.9), (100, 150, 40, 40, 0, 0.8)])]
    m = coco_metrics_from_frames(gt, dt, 240, 304, CLASSES, backend)
    assert m["AP_50"] == pytest.approx(51 / 101, abs=1e-12)
    assert m["AP"] == pytest.approx(51 / 101, abs=1e-12)
    assert m["AR_1"] == pytest.approx(0.5) and m["AR_10"] == pytest.approx(0.5)


def test_wrong_class_and_unknown_class_are_not_matches():
    gt = [boxes([(0, 0, 50, 50, 0)])]
    m = coco_metrics_from_frames(gt, [boxes([(0, 0, 50, 50, 1, 0.9), (0, 0, 50, 50, 5, 0.9)])],
                                 240, 304, CLASSES)
    assert m["AP"] == 0.0 and m["AR_100"] == 0.0


def test_no_detections_gives_zeros():
    m = coco_metrics_from_frames([boxes([(0, 0, 50, 50, 0)])], [boxes([])], 240, 304, CLASSES)
    assert all(v == 0.0 for v in m.values())


def _direct_pycocotools(gt_frames, dt_frames, height, width, classes):
    """The same evaluation written straight against pycocotools (loadRes path)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    images, annotations, results = [], [], []
    for i, (g, d) in enumerate(zip(gt_frames, dt_frames), start=1):
        images.append({"id": i, "height": height, "width": width})
        for b in g:
            annotations.append({"id": len(annotations) + 1, "image_id": i, "iscrowd": 0,
                                "bbox": [float(b["x"]), float(b["y"]), float(b["w"]),
                                         float(b["h"])],
                                "area": float(b["w"]) * float(b["h"]),
                                "category_id": int(b["class_id"]) + 1})
        for b in d:
            results.append({"image_id": i, "category_id": int(b["class_id"]) + 1,
                            "score": float(b["class_confidence"]),
                            "bbox": [float(b["x"]), float(b["y"]), float(b["w"]),
                                     float(b["h"])]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations,
                           "categories": [{"id": k + 1, "name": n}
                                          for k, n in enumerate(classes)]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def random_frames(seed, n_frames=30, width=304, height=240):
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(n_frames):
        n = int(rng.integers(0, 6))
        g = np.zeros(n, EventBbox)
        g["x"], g["y"] = rng.uniform(0, width - 60, n), rng.uniform(0, height - 60, n)
        g["w"], g["h"] = rng.uniform(8, 120, n), rng.uniform(8, 120, n)
        g["class_id"] = rng.integers(0, 2, n)
        d = np.repeat(g, 2)
        jitter = rng.normal(0, 6, (len(d), 4)).astype(np.float32)
        d["x"] += jitter[:, 0]
        d["y"] += jitter[:, 1]
        d["w"] = np.abs(d["w"] + jitter[:, 2])
        d["h"] = np.abs(d["h"] + jitter[:, 3])
        d["class_confidence"] = rng.uniform(0, 1, len(d))
        flip = rng.uniform(size=len(d)) < 0.1
        d["class_id"][flip] = 1 - d["class_id"][flip]
        gts.append(g)
        dts.append(d)
    return gts, dts


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_equals_pycocotools_called_directly(seed, backend):
    gts, dts = random_frames(seed)
    got = coco_metrics_from_frames(gts, dts, 240, 304, CLASSES, backend)
    want = _direct_pycocotools(gts, dts, 240, 304, CLASSES)
    np.testing.assert_allclose([got[k] for k in COCO_METRIC_NAMES], want, rtol=0,
                               atol=1e-12 if backend == "pycocotools" else 1e-6)
    assert 0.2 < got["AP"] < 0.95        # a non-trivial case


def test_faster_coco_eval_gives_the_same_numbers():
    pytest.importorskip("faster_coco_eval")
    gts, dts = random_frames(5)
    a = coco_metrics_from_frames(gts, dts, 240, 304, CLASSES, backend="pycocotools")
    b = coco_metrics_from_frames(gts, dts, 240, 304, CLASSES, backend="faster_coco_eval")
    np.testing.assert_allclose([b[k] for k in COCO_METRIC_NAMES],
                               [a[k] for k in COCO_METRIC_NAMES], rtol=0, atol=1e-6)
    with pytest.raises(ArgumentError, match="backend"):
        coco_metrics_from_frames(gts, dts, 240, 304, CLASSES, backend="mine")


# ------------------------------------------------------------------ the toolbox's protocol
def test_time_matching_window_is_inclusive_50ms():
    gt = boxes([(0, 0, 50, 50, 0, 1, 1_000_000), (0, 0, 50, 50, 0, 1, 1_000_000),
                (9, 9, 50, 50, 0, 1, 2_000_000)])
    dt = boxes([(0, 0, 50, 50, 0, 0.5, 949_999), (0, 0, 50, 50, 0, 0.5, 950_000),
                (0, 0, 50, 50, 0, 0.5, 1_050_000), (0, 0, 50, 50, 0, 0.5, 1_050_001),
                (0, 0, 50, 50, 0, 0.5, 3_000_000)])
    g, d = match_boxes_by_time(gt, dt)
    assert [len(x) for x in g] == [2, 1] and [x["t"].tolist() for x in d] == \
        [[950_000, 1_050_000], []]
    g, d = match_boxes_by_time(gt[::-1].copy(), dt[::-1].copy(), time_tol=0)   # unsorted input
    assert [x["t"][0] for x in g] == [1_000_000, 2_000_000] and [len(x) for x in d] == [0, 0]


def test_detection_at_50001_us_is_outside():
    gt = [boxes([(0, 0, 50, 50, 0, 1, 1_000_000)])]
    inside = [boxes([(0, 0, 50, 50, 0, 0.7, 1_050_000)])]
    outside = [boxes([(0, 0, 50, 50, 0, 0.7, 1_050_001)])]
    assert evaluate_detection(gt, inside)["AP"] == pytest.approx(1.0, abs=1e-12)
    assert evaluate_detection(gt, outside)["AP"] == 0.0


def test_recordings_are_separate_images_and_filters_apply_to_both():
    # same time in two recordings: two images; the detection of recording 0 does not match
    # recording 1's box. A tiny detection (w 9 < 10) is filtered away, as is t <= 500 ms.
    gt = [boxes([(0, 0, 50, 50, 0, 1, 600_000), (0, 0, 50, 50, 0, 1, 500_000)]),
          boxes([(100, 100, 50, 50, 0, 1, 600_000)])]
    dt = [boxes([(0, 0, 50, 50, 0, 0.9, 600_000), (100, 100, 9, 50, 0, 0.95, 600_000)]),
          boxes([])]
    m = evaluate_detection(gt, dt, box_filter=GEN1_FILTER)
    assert m["num_images"] == 2 and m["num_gt"] == 2 and m["num_detections"] == 1
    assert m["AP_50"] == pytest.approx(51 / 101, abs=1e-12)   # 1 TP of 2 GT, best first
    unfiltered = evaluate_detection(gt, dt)
    assert unfiltered["num_images"] == 3 and unfiltered["num_gt"] == 3


def test_float32_diagonal_rule():
    b = boxes([(0, 0, 20, 56.568542, 0, 1, 600_000)])
    assert len(GEN4_FILTER(b)) == 1                    # float32: 3600 >= 3600
    w, h = 20.0, float(np.float32(56.568542))
    assert w * w + h * h < 3600                        # float64 would drop it
    assert len(GEN4_FILTER.halved()(b)) == 1 and GEN4_FILTER.halved() == PaperBoxFilter(30, 10)
    side = boxes([(0, 0, 19.99, 100, 0, 1, 600_000), (0, 0, 20, 100, 0, 1, 600_000)])
    assert GEN4_FILTER.mask(side).tolist() == [False, True]
    with pytest.raises(EventArrayError):
        GEN1_FILTER.mask(np.zeros(3, [("x", "f4")]))


def test_rvt_protocol_settings():
    assert rvt_box_filter("gen1") == PaperBoxFilter(30, 10, 500_000)
    assert rvt_box_filter("gen4") == PaperBoxFilter(60, 20, 500_000)
    assert rvt_box_filter("gen4", downsample_by_2=True) == PaperBoxFilter(30, 10, 500_000)
    # gen4 at 640x360: a 40x25 box passes the halved filter (side 10, diag 30), not the full one
    gt = [boxes([(10, 10, 40, 25, 2, 1, 700_000)])]
    dt = [boxes([(10, 10, 40, 25, 2, 0.8, 700_000)])]
    m = evaluate_rvt(gt, dt, "gen4", 384, 640, downsample_by_2=True)
    assert list(m) == ["AP", "AP_50", "AP_75", "AP_S", "AP_M", "AP_L"]
    assert m["AP"] == pytest.approx(1.0, abs=1e-12)
    assert evaluate_rvt(gt, dt, "gen4", 384, 640)["AP"] == 0.0     # filtered: nothing left
    with pytest.raises(ArgumentError):
        evaluate_rvt(gt, dt, "gen2", 384, 640)


def test_evaluate_folders_pairs_by_name(tmp_path):
    gt_dir, dt_dir = tmp_path / "gt", tmp_path / "dt"
    gt_dir.mkdir()
    dt_dir.mkdir()
    gts, dts = random_frames(3, n_frames=6)
    for k, (g, d) in enumerate(zip(gts, dts)):
        g["t"] = 600_000 + 100_000 * k
        d["t"] = 600_000 + 100_000 * k
        np.save(gt_dir / f"rec{k}_bbox.npy", g)
        np.save(dt_dir / f"rec{k}.npy", d)
    m = evaluate_folders(gt_dir, dt_dir, CLASSES, 240, 304)
    want = coco_metrics_from_frames([g for g in gts if len(g)],
                                    [d for g, d in zip(gts, dts) if len(g)], 240, 304, CLASSES)
    assert m["recordings"] == [f"rec{k}" for k in range(6)]
    assert {k: m[k] for k in COCO_METRIC_NAMES} == want
    (dt_dir / "rec0.npy").unlink()
    with pytest.raises(MissingFileError, match="rec0"):
        evaluate_folders(gt_dir, dt_dir, CLASSES, 240, 304)
    no_score = np.zeros(2, [("t", "<i8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"),
                            ("h", "<f4"), ("class_id", "<u4")])
    np.save(dt_dir / "rec0.npy", no_score)
    with pytest.raises(FileFormatError, match="class_confidence"):
        evaluate_folders(gt_dir, dt_dir, CLASSES, 240, 304)


def test_cli_evaluate_prints_the_table(tmp_path, capsys):
    from evstream.cli import main
    gt_dir, dt_dir = tmp_path / "gt", tmp_path / "dt"
    gt_dir.mkdir()
    dt_dir.mkdir()
    gt = boxes([(0, 0, 50, 50, 0, 1, 600_000), (0, 0, 50, 50, 1, 1, 400_000)])
    dt = boxes([(0, 0, 50, 50, 0, 0.8, 610_000)])
    np.save(gt_dir / "a_bbox.npy", gt)
    np.save(dt_dir / "a_bbox.npy", dt)
    assert main(["evaluate", str(gt_dir), str(dt_dir), "--dataset", "gen1"]) == 0
    out = capsys.readouterr().out
    assert "AP_50" in out and "1 recordings, 1 images" in out and "t > 500000 us" in out
    line = [ln for ln in out.splitlines() if ln.startswith("AP_50 ")][0]
    assert line.split()[-1] == "1.0000"
    # everything filtered away (skip 1 s): nothing evaluated -> exit 1, with the reason
    assert main(["evaluate", str(gt_dir), str(dt_dir), "--dataset", "gen1",
                 "--skip-ts", "1000000"]) == 1
    assert "no ground-truth box left" in capsys.readouterr().err
    assert main(["evaluate", str(gt_dir), str(tmp_path / "nope"), "--dataset", "gen1"]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["evaluate", str(gt_dir), str(dt_dir)]) == 1
