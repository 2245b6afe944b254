"""``evstream demo`` end to end at a reduced size."""

from dataclasses import replace

import cv2

from evstream.cli import main
from evstream.demo import pipeline
from evstream.demo.pipeline import DemoConfig, run_demo


def test_demo_runs_end_to_end(tmp_path):
    said = []
    config = replace(DemoConfig(), recordings=4, val_recordings=1, duration_s=1.0, steps=8)
    results = run_demo(str(tmp_path), config, say=lambda *a: said.append(" ".join(map(str, a))))
    text = "\n".join(said)
    assert "available keys:  dict_keys(['inputs', 'labels', 'mask_keep_memory', " \
           "'frame_is_labeled', 'video_infos'])" in text
    assert "input shape: torch.Size([3, 2, 2, 120, 152])" in text
    assert "box events:  3 lists" in text and "[2, 2, 2]" in text
    assert "start_ts 0us delta_t 50000us, num_tbins 3, total duration 1000000us" in text
    assert len(results["files"]["train"]) == 3 and len(results["files"]["val"]) == 1
    for split in ("train", "val"):
        for path in results["files"][split]:
            assert (tmp_path / "precomputed" / split / path.split("/")[-1].replace(
                ".h5", "_bbox.npy")).is_file()
    capture = cv2.VideoCapture(results["video"])
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 608, 3)       # 2x2 grid of 240x304 cells
    sheet = cv2.imread(results["contact_sheet"])
    assert sheet.shape == (960, 1216, 3)
    assert len(results["losses"]) == 8
    assert "held-out AP@0.5" in text and "baseline" in text
    assert "held-out COCO mAP" in text
    # the COCO numbers are evstream.metrics' on the frames evaluate() scored
    from evstream.demo.training import coco_detection_metrics
    again = coco_detection_metrics(results["metrics"]["predictions"],
                                   results["metrics"]["ground_truths"],
                                   pipeline.WANTED_KEYS, 120, 152)
    assert again == results["coco"] and 0 <= results["coco"]["AP"] <= 1
    assert f"AP50: {results['coco']['AP_50']:.3f}" in text


def test_demo_command_exit_code_follows_the_baseline_comparison(tmp_path, monkeypatch):
    runs = []

    def fake_run(out, config):
        runs.append((out, config.steps))
        return {"metrics": {"ap": 0.2}, "baseline": {"ap": 0.3}}
    monkeypatch.setattr(pipeline, "run_demo", fake_run)
    assert main(["demo", "--out", str(tmp_path), "--steps", "7"]) == 1
    assert runs == [(str(tmp_path), 7)]
