"""Command-line habits (issue 13, items 2 and 6): --help and --version, ``python -m evstream``,
old spellings that still work with a deprecation message, precompute picking up the box files
beside its inputs, info's time-shift note only for RAW input, render choosing a bin length for
short recordings, and every command that wrote nothing exiting non-zero with the reason.
Test files are made with the project's writers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import evstream
from evstream.cli import DESCRIPTION, build_parser, main
from evstream.data.scheduler import get_duration
from evstream.data.render import render_delta_t
from evstream.errors import ArgumentError
from evstream.io import DatWriter, EventCD, RawWriter

TIME_SHIFT_NOTE = "RAW times are time-shifted"


def events(n: int, duration_us: int, height: int = 48, width: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(1, duration_us, n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def write_raw(path, ev, height=48, width=64):
    with RawWriter(path, height, width) as writer:
        writer.write(ev)
    return str(path)


def write_dat(path, ev, height=48, width=64):
    writer = DatWriter(path, height, width)
    writer.write(ev)
    writer.close()
    return str(path)


# ------------------------------------------------------------------ help, version, -m
def test_help_describes_the_tool_in_whole_sentences(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert " ".join(out.split()).count(DESCRIPTION) == 1
    assert "``" not in out and DESCRIPTION.endswith(".")
    for command in ("info", "precompute", "render", "synth", "demo"):
        assert command in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"evstream {evstream.__version__}"


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "evstream", "--version"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"evstream {evstream.__version__}"


# ------------------------------------------------------------------ spellings
def test_one_spelling_for_sizes_and_jobs():
    parser = build_parser()
    synth = parser.parse_args(["synth", "out", "--height-width", "240", "304"])
    assert synth.height_width == [240, 304] and synth.recordings == 3
    assert parser.parse_args(["synth", "out"]).height_width == (360, 640)
    for flag in ("-j", "--jobs", "-n"):
        assert parser.parse_args(["precompute", "a.raw", "-o", "o", flag, "3"]).jobs == 3


def test_old_synth_spellings_still_work_with_a_deprecation_message(tmp_path, capsys):
    new = ["--recordings", "2", "--height-width", "48", "64"]
    old = ["-n", "2", "--size", "64x48"]
    for name, flags in (("new", new), ("old", old)):
        assert main(["synth", str(tmp_path / name), *flags, "--duration-s", "0.1",
                     "--no-progress"]) == 0
        err = capsys.readouterr().err
        if name == "old":
            assert "warning: -n is deprecated and will be removed; use --recordings" in err
            assert "warning: --size is deprecated and will be removed; use --height-width H W" \
                in err
        else:
            assert "deprecated" not in err
    files = sorted(p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*.raw"))
    assert len(files) == 2
    for rel in files:                          # same recordings, byte for byte
        assert (tmp_path / "new" / rel).read_bytes() == (tmp_path / "old" / rel).read_bytes()


# ------------------------------------------------------------------ precompute
def test_precompute_picks_up_box_files_unless_told_not_to(tmp_path, capsys):
    ev = events(500, 200_000)
    dat = write_dat(tmp_path / "a_td.dat", ev)
    boxes = np.zeros(2, evstream.io.EventBbox)
    boxes["t"] = [60_000, 160_000]
    boxes["w"] = boxes["h"] = 5
    np.save(tmp_path / "a_bbox.npy", boxes)
    raw = write_raw(tmp_path / "b.raw", ev)                     # no box file beside it
    assert main(["precompute", dat, raw, "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "1/2 inputs have a <stem>_bbox.npy beside them" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.h5", "a_bbox.npy", "b.h5"]
    assert np.array_equal(np.load(tmp_path / "out" / "a_bbox.npy")["t"], boxes["t"])
    assert main(["precompute", dat, "-o", str(tmp_path / "none"), "--no-box-labels",
                 "--no-progress"]) == 0
    assert list((tmp_path / "none").glob("*_bbox.npy")) == []
    assert "bbox" not in capsys.readouterr().err


def test_precompute_that_writes_no_row_fails_with_the_reason(tmp_path, capsys):
    empty = write_dat(tmp_path / "empty.dat", np.zeros(0, EventCD))
    assert main(["precompute", empty, "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    assert "error: no tensor row written" in capsys.readouterr().err


# ------------------------------------------------------------------ info
def test_info_time_shift_note_only_for_raw(tmp_path, capsys):
    ev = events(100, 50_000)
    dat = write_dat(tmp_path / "a.dat", ev)
    raw = write_raw(tmp_path / "b.raw", ev)
    assert main(["info", dat]) == 0
    assert TIME_SHIFT_NOTE not in capsys.readouterr().out
    assert main(["info", dat, raw]) == 0
    assert TIME_SHIFT_NOTE in capsys.readouterr().out


# ------------------------------------------------------------------ render
def test_render_short_recording_picks_a_bin_and_says_so(tmp_path, capsys):
    raw = write_raw(tmp_path / "short.raw", events(3000, 95_000))
    video = tmp_path / "r.mp4"
    assert main(["render", raw, "-o", str(video)]) == 0
    captured = capsys.readouterr()
    duration = get_duration(raw)                             # as the loader measures it
    assert 90_000 < duration < 100_000
    chosen = duration // 5 // 1000 * 1000                     # 5 bins fill it, whole ms
    assert f"lasts {duration / 1000:.1f} ms, less than 5 bins of 50000 us: using --delta-t " \
           f"{chosen} (set --delta-t or --num-tbins to choose)" in captured.err
    assert "wrote 5 frames" in captured.out and video.stat().st_size > 0


def test_render_bin_rule_hand_cases():
    files = ["a.raw", "b.raw"]
    assert render_delta_t(files, [250_000, 900_000], 5) == (50_000, None)   # long enough
    delta_t, note = render_delta_t(files, [900_000, 95_871], 5)
    assert delta_t == 19_000 and note.startswith("b.raw lasts 95.9 ms, less than 5 bins of 50000 us")
    assert render_delta_t(files, [3_000, 900_000], 5)[0] == 600             # under 1 ms: exact us
    with pytest.raises(ArgumentError, match="too short to render 5 time bins"):
        render_delta_t(files, [4, 900_000], 5)


def test_render_that_writes_no_frame_fails_with_the_reason(tmp_path, capsys):
    raw = write_raw(tmp_path / "short.raw", events(3000, 95_000))
    video = tmp_path / "r.mp4"
    assert main(["render", raw, "-o", str(video), "--delta-t", "50000"]) == 1
    err = capsys.readouterr().err
    assert "error: no frame written: every input is shorter than one chunk of 5 bins x 50000 us" \
        in err and "--delta-t" in err
    assert not video.exists()


# ------------------------------------------------------------------ progress
def test_synth_progress_only_when_asked_off_a_terminal_and_in_whole_units(tmp_path, capsys):
    argv = ["synth", str(tmp_path / "a"), "--recordings", "1", "--duration-s", "0.3",
            "--height-width", "48", "64"]
    assert main(argv) == 0                      # stderr is not a terminal here: no bar
    assert "simulated" not in capsys.readouterr().err
    assert main(argv + ["--progress"]) == 0
    err = capsys.readouterr().err
    assert "300/300 ms simulated" in err and "." not in err.split("ms simulated")[0][-8:]
