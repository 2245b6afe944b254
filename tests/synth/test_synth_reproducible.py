"""A seed gives byte-identical files (issue 13, item 7): the header date is fixed
(SYNTH_DATE) or $SOURCE_DATE_EPOCH, never the current time; synth_info.json has no wall-clock
times. The writers themselves honour $SOURCE_DATE_EPOCH."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evstream.cli import main
from evstream.io import DatWriter, EventCD, RawWriter, load_events
from evstream.io.header import read_raw_header
from evstream.synth import make_dataset


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def synth(out: Path, *extra: str) -> None:
    assert main(["synth", str(out), "--recordings", "2", "--duration-s", "0.15",
                 "--size", "64x48", "--format", "evt3+dat", "--seed", "7", "--no-progress",
                 *extra]) == 0


def test_same_seed_same_bytes(tmp_path, capsys):
    synth(tmp_path / "a")
    synth(tmp_path / "b")
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert sorted(a) == sorted(b) and len(a) == 8      # 2 x (raw, dat, bbox) + label map + info
    assert [name for name in a if a[name] != b[name]] == []
    raw = next(n for n in a if n.endswith(".raw"))
    assert b"% date 2020-01-01 00:00:00\n" in a[raw][:200]
    dat = next(n for n in a if n.endswith(".dat"))
    assert b"% Date 2020-1-1 0:0:0\n" in a[dat][:200]
    assert b'"seconds"' not in a["synth_info.json"]


def test_other_seed_other_events(tmp_path):
    a = make_dataset(tmp_path / "a", recordings=1, duration_s=0.15, height=48, width=64, seed=1)
    b = make_dataset(tmp_path / "b", recordings=1, duration_s=0.15, height=48, width=64, seed=2)
    assert not np.array_equal(load_events(a.recordings[0].paths[0]),
                              load_events(b.recordings[0].paths[0]))


def test_source_date_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000000")      # 2001-09-09 01:46:40 UTC
    synth(tmp_path / "s")
    raw = next((tmp_path / "s").rglob("*.raw"))
    assert read_raw_header(raw).fields["date"] == "2001-09-09 01:46:40"
    ev = np.zeros(3, EventCD)
    ev["t"] = [1, 2, 3]
    with RawWriter(tmp_path / "w.raw", 48, 64) as w:
        w.write(ev)
    assert read_raw_header(tmp_path / "w.raw").fields["date"] == "2001-09-09 01:46:40"
    d = DatWriter(tmp_path / "w.dat", 48, 64)
    d.write(ev)
    d.close()
    assert b"% Date 2001-9-9 1:46:40\n" in (tmp_path / "w.dat").read_bytes()
