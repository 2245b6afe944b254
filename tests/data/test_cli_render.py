"""``evstream render``: the loader's show() grids written to an mp4 and PNG files."""

from __future__ import annotations

import os

import cv2

from evstream.cli import main

from seqloader_data import (make_boxes, save_boxes, synthetic_events, tensor_rows, write_dat,
                            write_label_map, write_tensor_file)


def test_render_mp4_and_pngs(tmp_path, capsys):
    h5 = write_tensor_file(tmp_path / "a.h5", tensor_rows(4, shape=(2, 60, 80),
                                                          active=(slice(5, 40), slice(5, 60))),
                           sensor=(120, 160))
    save_boxes(tmp_path / "a_bbox.npy", make_boxes([50_000, 100_000], x=20, y=20, w=60, h=40))
    lm = write_label_map(tmp_path / "label_map_dictionary.json")
    dat = write_dat(tmp_path / "b_td.dat", synthetic_events(300_000, height=120, width=160), 120, 160)
    save_boxes(tmp_path / "b_bbox.npy", make_boxes([60_000], x=20, y=20, w=60, h=40))
    out = tmp_path / "grid.mp4"
    rc = main(["render", h5, dat, "-o", str(out), "--png-dir", str(tmp_path / "png"),
               "--num-tbins", "2", "--height-width", "60", "80", "--label-map", lm,
               "--classes", "car", "pedestrian", "--max-frames", "5"])
    assert rc == 0
    assert "wrote 5 frames of 160x60" in capsys.readouterr().out
    assert out.stat().st_size > 0
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    assert ok and frame.shape == (60, 160, 3)
    pngs = sorted(os.listdir(tmp_path / "png"))
    assert pngs == [f"frame_{i:06d}.png" for i in range(5)]
    first = cv2.imread(str(tmp_path / "png" / pngs[0]))[..., ::-1]
    assert (first[:10, :10, 0] == 222).all() and (first[:10, 80:90, 0] == 222).all()
    # without any output: usage error
    assert main(["render", h5]) == 2
    assert main(["render", str(tmp_path / "missing.h5"), "--png-dir", str(tmp_path / "x")]) == 1
