"""``evstream info`` / ``precompute`` / ``render`` on HDF5 event-array files (eTraM / RVT /
DSEC layouts)."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
from test_hdf5_event_arrays import make_events, write_event_arrays  # noqa: E402

from evstream.cli import main  # noqa: E402
from evstream.io import DatWriter  # noqa: E402


def test_info_precompute_render(tmp_path, capsys):
    events = make_events(n=30_000, span=400_000, seed=9)
    path = tmp_path / "rec_td.h5"
    write_event_arrays(path, events, "rvt", compression="blosc")
    assert main(["info", str(path)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("rec_td.h5"))
    assert "640x480" in line and "30,000" in line

    twin = tmp_path / "twin_td.dat"                  # the same events as DAT
    writer = DatWriter(twin, height=480, width=640)
    writer.write(events)
    writer.close()
    out = tmp_path / "out"
    assert main(["precompute", str(path), str(twin), "-o", str(out), "--preprocess", "histo",
                 "--delta-t", "100000", "--height-width", "240", "320", "--no-progress"]) == 0
    capsys.readouterr()
    with h5py.File(out / "rec.h5", "r") as f, h5py.File(out / "twin.h5", "r") as g:
        data, want = f["data"][:], g["data"][:]
    assert data.shape == (4, 2, 240, 320) and data.any()
    np.testing.assert_array_equal(data, want)

    png = tmp_path / "png"
    assert main(["render", str(path), "--png-dir", str(png), "--max-frames", "2",
                 "--delta-t", "50000", "--num-tbins", "2"]) == 0
    assert len(list(png.glob("*.png"))) == 2
