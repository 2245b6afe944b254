"""``evstream precompute``: outputs, summary table, skip/overwrite, -j 2, failures -> exit 1."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from sample_oracle import SHIFTED_SPAN, sample

from evstream.cli import main
from evstream.io import EventCD, RawWriter


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


def test_ctrl_c_stops_a_parallel_precompute_with_a_line_and_no_partial_files(tmp_path):
    """SIGINT to the command's process group (a terminal's Ctrl-C) while two workers write:
    exit 130, one line and no traceback, no worker left, no partial file left."""
    rng = np.random.default_rng(0)
    inputs = []
    for i in range(2):
        n = 3_000_000
        ev = np.zeros(n, EventCD)
        ev["x"], ev["y"] = rng.integers(0, 640, n), rng.integers(0, 480, n)
        ev["p"], ev["t"] = rng.integers(0, 2, n), np.sort(rng.integers(0, 3_000_000, n))
        inputs.append(tmp_path / f"rec{i}.raw")
        with RawWriter(inputs[-1], height=480, width=640) as w:
            w.write(ev)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evstream", "precompute", *map(str, inputs), "-o", str(out),
         "--preprocess", "histo", "--delta-t", "10000", "--compression", "gzip", "-j", "2",
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: (os.setsid(), signal.signal(signal.SIGINT, signal.SIG_DFL)))
    deadline = time.monotonic() + 60
    while not (out.is_dir() and len([p for p in out.iterdir() if ".partial-" in p.name]) == 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == "evstream: interrupted"
    assert "Traceback" not in stderr
    assert os.listdir(out) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)             # nothing of the group is left
