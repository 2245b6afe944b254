"""Precompute on a full disk, failed label files, reruns of other requests and interrupted
overwrites, uncreatable output folders (issue 12, items 1 and 6)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import uuid

import h5py
import numpy as np
import pytest

from evstream.cli import main
from evstream.errors import OutputWriteError
from evstream.io import DatWriter, EventBbox, EventCD
from evstream.preprocessing.hdf5 import REQUEST_ATTR, write_to_hdf5
from evstream.utils import HDF5Writer

H, W = 48, 64


def write_dat(path, n=20_000, t_max=230_000, seed=0, height=H, width=W):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    with DatWriter(path, height=height, width=width) as w:
        w.write(ev)
    return os.fspath(path)


def write_boxes(path, times=(5_000, 100_000, 200_000)):
    boxes = np.zeros(len(times), EventBbox)
    boxes["t"] = times
    boxes["w"] = boxes["h"] = 10
    np.save(path, boxes)
    return os.fspath(path)


def final_files(folder):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*"))
                  if ".partial-" not in p)


# ----------------------------------------------------------------------------- item 1
@pytest.fixture
def small_tmpfs():
    """A 600 kB tmpfs (root only; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = f"/tmp/evstream-fulldisk-{uuid.uuid4().hex[:8]}"
    os.makedirs(mount)
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", mount],
                        capture_output=True).returncode
    if rc:
        os.rmdir(mount)
        pytest.skip("mount -t tmpfs failed")
    yield mount
    subprocess.run(["umount", mount], check=True)
    os.rmdir(mount)


@pytest.mark.parametrize("jobs", [1, 2])
def test_full_disk_is_an_error_line_not_a_segfault(tmp_path, small_tmpfs, jobs):
    """Before: rc 139 (-j 1) / workers exit -11 (-j 2) when HDF5 was closed after ENOSPC."""
    big = write_dat(tmp_path / "big_td.dat", n=300_000, t_max=2_000_000, height=240, width=320)
    small = write_dat(tmp_path / "small_td.dat", n=2_000, t_max=100_000)
    out = os.path.join(small_tmpfs, "out")
    proc = subprocess.run([sys.executable, "-m", "evstream.cli", "precompute", big, small,
                           "-o", out, "--compression", "none", "-j", str(jobs), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    big_error = f"error: {out}/big.h5: No space left on device"
    small_error = f"error: {out}/small.h5: No space left on device"
    assert "Traceback" not in proc.stderr
    if jobs == 2 and small_error in errors:
        # run side by side, the small input may meet the disk the big one filled: then it is
        # an error line too, and nothing of either is left
        assert sorted(errors) == [big_error, small_error], proc.stderr
        assert os.listdir(out) == []
        return
    assert errors == [big_error], proc.stderr
    assert final_files(out) == ["small.h5"]           # the other input is done, nothing partial
    assert os.listdir(out) == ["small.h5"]
    with h5py.File(os.path.join(out, "small.h5"), "r") as f:
        assert f["data"].shape == (2, 2, H, W)        # events over [0, 100 ms): 2 rows of 50 ms


def test_writer_raises_output_write_error_on_a_full_disk(small_tmpfs):
    path = os.path.join(small_tmpfs, "x.h5")
    w = HDF5Writer(path, "data", (2, 240, 320), dtype=np.float32, compression="none")
    with pytest.raises(OutputWriteError, match=r"x\.h5: No space left on device$"):
        try:                   # the error comes with a write or with the close (chunk cache)
            for _ in range(10):
                w.write(np.ones((2, 240, 320), np.float32))
        finally:
            w.close()
    w.close()                  # closing again is a no-op (it used to segfault)
    assert w._raw._file.closed # its descriptor is released by its own file object only
    fds = set(os.listdir("/proc/self/fd"))
    del w
    assert set(os.listdir("/proc/self/fd")) == fds     # nothing closed twice at collection
    os.remove(path)


# ----------------------------------------------------------------------------- item 6
def test_failed_box_labels_leave_no_final_file_and_a_rerun_writes_the_labels(tmp_path, capsys):
    rec = write_dat(tmp_path / "rec_td.dat")
    box = tmp_path / "rec_td_bbox.npy"
    box.write_bytes(b"this is not an npy file")
    out = tmp_path / "out"
    argv = ["precompute", rec, "-o", str(out), "--box-labels", str(box), "--no-progress",
            "--delta-t", "10000"]
    assert main(argv) == 1
    assert "rec_td_bbox.npy" in capsys.readouterr().err
    assert final_files(out) == []                    # before: rec.h5 was left
    write_boxes(box)
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "written" in table and "skipped" not in table
    assert final_files(out) == ["rec.h5", "rec_td_bbox.npy"]
    np.testing.assert_array_equal(np.load(out / "rec_td_bbox.npy")["t"], [5_000, 100_000, 200_000])
    assert main(argv) == 0 and "skipped" in capsys.readouterr().out


def test_interrupted_overwrite_split_set_is_redone(tmp_path, monkeypatch):
    """An --overwrite run with diff, interrupted after renaming its last split, leaves histo _0, _1
    beside diff _2; a rerun (either request, no --overwrite) must not accept the mix."""
    rec = write_dat(tmp_path / "rec_td.dat")
    out = tmp_path / "out"
    kw = dict(output_folder=out, delta_t=10_000, max_duration=80_000)
    assert write_to_hdf5(rec, preprocess="histo", **kw).status == "written"
    assert final_files(out) == ["rec_0.h5", "rec_1.h5", "rec_2.h5"]
    real_replace, calls = os.replace, []

    def interrupted_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        write_to_hdf5(rec, preprocess="diff", overwrite=True, **kw)
    monkeypatch.setattr(os, "replace", real_replace)
    # once a split was renamed, the failure removes the input's mixed set: nothing is left
    assert final_files(out) == []
    assert write_to_hdf5(rec, preprocess="histo", **kw).status == "written"

    # simulate a hard kill (no cleanup): histo _0, _1 beside a diff _2
    os.makedirs(tmp_path / "diff")
    write_to_hdf5(rec, preprocess="diff", output_folder=tmp_path / "diff", delta_t=10_000,
                  max_duration=80_000)
    os.replace(tmp_path / "diff" / "rec_2.h5", out / "rec_2.h5")
    for preprocess in ("histo", "diff"):
        result = write_to_hdf5(rec, preprocess=preprocess, **kw)
        assert result.status == "written", preprocess
        for name in ("rec_0.h5", "rec_1.h5", "rec_2.h5"):
            with h5py.File(out / name, "r") as f:
                assert f["data"].attrs["events_to_tensor"] == preprocess.encode()
        assert write_to_hdf5(rec, preprocess=preprocess, **kw).status == "skipped"


@pytest.mark.parametrize("change", ["delta_t", "preprocess", "input", "option", "no_attr",
                                    "missing_split"])
def test_rerun_redoes_outputs_of_another_request(tmp_path, change):
    rec = write_dat(tmp_path / "rec_td.dat")
    out = tmp_path / "out"
    kw = dict(output_folder=out, delta_t=10_000, max_duration=80_000, preprocess="histo")
    write_to_hdf5(rec, **kw)
    assert write_to_hdf5(rec, **kw).status == "skipped"
    if change == "delta_t":
        kw.update(delta_t=20_000)
    elif change == "preprocess":
        kw.update(preprocess="event_cube")
    elif change == "input":
        write_dat(rec, seed=1, t_max=300_000)
    elif change == "option":
        kw.update(preprocess_kwargs={"max_incr_per_pixel": 2.0})
    elif change == "no_attr":                        # written by another tool
        with h5py.File(out / "rec_0.h5", "r+") as f:
            del f.attrs[REQUEST_ATTR]
    else:
        os.remove(out / "rec_1.h5")
    result = write_to_hdf5(rec, **kw)
    assert result.status == "written"
    assert final_files(out) == [os.path.basename(p) for p in result.outputs]
    assert write_to_hdf5(rec, **kw).status == "skipped"


def test_uncreatable_output_folder_is_one_error_line(tmp_path, capsys):
    rec = write_dat(tmp_path / "rec_td.dat")
    (tmp_path / "file").write_text("x")
    assert main(["precompute", rec, "-o", str(tmp_path / "file" / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path}/file/out: cannot create the output folder: Not a directory"]
    with pytest.raises(OutputWriteError, match="cannot create the output folder"):
        write_to_hdf5(rec, output_folder=tmp_path / "file" / "out")
