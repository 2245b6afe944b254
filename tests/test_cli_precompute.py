"""``evstream precompute``: outputs, summary table, skip/overwrite, -j 2, failures -> exit 1."""

from __future__ import annotations

import math

import h5py
from sample_oracle import SHIFTED_SPAN, sample

from evstream.cli import main


def test_precompute_samples_with_a_failure(tmp_path, capsys):
    out = tmp_path / "out"
    raw = sample("expelliarmus_evt3_sample.raw")
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"\x00\x01\x02")
    argv = ["precompute", str(raw), str(bad), "-o", str(out), "--preprocess", "histo",
            "--delta-t", "5000", "--height-width", "360", "640", "--compression", "blosc",
            "--no-progress"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert table[0].split()[:4] == ["input", "status", "files", "rows"]
    rows = math.ceil(SHIFTED_SPAN["expelliarmus_evt3_sample.raw"][1] / 5000)
    line = next(l for l in table if l.startswith("expelliarmus_evt3_sample.raw"))
    assert "written" in line and f" {rows} " in line and "219,596" in line
    assert any(l.startswith("bad.raw") and "failed" in l for l in table)
    assert captured.err.strip().startswith(f"error: {bad}")
    with h5py.File(out / "expelliarmus_evt3_sample.h5", "r") as f:
        assert f["data"].shape == (rows, 2, 360, 640)
        assert f["data"].attrs["event_input_width"] == 1280
    # second run: skipped; only the good input -> exit 0
    assert main(argv[:2] + argv[3:]) == 0
    assert "skipped" in capsys.readouterr().out


def test_precompute_parallel_n_events_uint8(tmp_path, capsys):
    inputs = [str(sample(n)) for n in ("faery_evt2.raw", "expelliarmus_evt2_sample.raw")]
    out = tmp_path / "out"
    assert main(["precompute", *inputs, "-o", str(out), "--mode", "n_events", "--n-events",
                 "20000", "--store-as-uint8", "-j", "2", "--no-progress", "--max-val", "3"]) == 0
    text = capsys.readouterr().out
    assert "2/2 ok" in text
    with h5py.File(out / "faery_evt2.h5", "r") as f:
        assert len(f["data"]) == 521252 // 20000 == len(f["last_timestamps"])
        assert f["data"].dtype == "uint8" and f["data"].attrs["max_incr_per_pixel"] == 3
        assert f["data"].attrs["mode"] == "n_events"
    assert main(["precompute", inputs[0], "-o", str(out), "--preprocess", "diff",
                 "--store-as-uint8", "--no-progress"]) == 2
    assert "store_as_uint8" in capsys.readouterr().err
