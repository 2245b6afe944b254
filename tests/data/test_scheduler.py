"""Scheduler, FileMetadata, durations and rounding (metavision_api.md §3–§5)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from evstream.data.scheduler import (FileMetadata, Scheduler, _get_durations, _get_original_size_file,
                                     _rounding, get_duration)
from evstream.errors import ArgumentError, FileFormatError, MissingFileError
from evstream.io import RawReader

from seqloader_data import (make_boxes, save_boxes, synthetic_events, tensor_rows, write_dat,
                            write_raw, write_tensor_file)

MS = 1000
TOTAL = 100_000          # delta_t 50 ms x 2 bins
DURATIONS = {"a": 500 * MS, "b": 300 * MS, "c": 200 * MS, "d": 450 * MS, "e": 100 * MS}


@pytest.fixture
def five_files(tmp_path):
    paths = []
    for name in "abcde":
        p = tmp_path / f"{name}.h5"
        p.write_bytes(b"")           # existence is all the scheduler checks when durations are given
        paths.append(str(p))
    return paths


def schedule(paths, padding, **kwargs):
    return Scheduler.create_schedule(paths, [DURATIONS[os.path.basename(p)[0]] for p in paths],
                                     50_000, 2, 2, shuffle=False, padding=padding, **kwargs)


def table(sched):
    rows = []
    for n in range(len(sched)):
        meta, start, duration = sched[n]
        name = "PAD" if meta.is_padding() else os.path.basename(meta.path)[0]
        rows.append((name, start, duration))
    return rows


# the worked example of metavision_api.md §5.4, item by item
EXPECTED = [("a", 0), ("b", 0), ("a", 100000), ("b", 100000), ("a", 200000), ("b", 200000),
            ("a", 300000), ("d", 0), ("a", 400000), ("d", 100000), ("c", 0), ("d", 200000),
            ("c", 100000), ("d", 300000)]


def test_rounding_table():
    assert _rounding(1000999, 100000) == 1000000
    assert _rounding(1099000, 100000) == 1100000
    assert _rounding(1099001, 100000) == 1100000
    assert _rounding(1050000, 100000) == 1000000
    assert _rounding(1000000, 100000) == 1000000
    assert _rounding(1000000, 500) == 1000000          # exact multiples stay
    np.testing.assert_array_equal(_rounding(np.array([1000999, 1099000]), 100000, max_batch=3),
                                  [300000, 300000])
    assert list(_rounding(np.array([450000, 500000]), TOTAL)) == [400000, 500000]


def test_worked_example_without_padding(five_files, caplog):
    with caplog.at_level(logging.WARNING, logger="evstream.data.scheduler"):
        sched = schedule(five_files, padding=False)
    assert len(sched) == 14
    assert [(n, s) for n, s, _ in table(sched)] == EXPECTED
    assert all(d == TOTAL for _, _, d in table(sched))
    assert [list(c) for c in sched.cumulative_time_table_per_batch] == [[500000, 700000, 800000],
                                                                        [300000, 700000]]
    # nothing is skipped silently: e is never read, d loses its tail
    text = caplog.text
    assert "padding=False" in text and "e.h5 (all 100000 us)" in text
    with pytest.raises(IndexError):
        sched[14]


def test_worked_example_with_padding(five_files):
    sched = schedule(five_files, padding=True)
    assert len(sched) == 16
    rows = table(sched)
    assert [(n, s) for n, s, _ in rows[:14]] == EXPECTED
    assert rows[14] == ("e", 0, TOTAL)
    assert rows[15] == ("PAD", 0, 0)
    meta = sched[15][0]
    assert meta.is_padding() and meta.path is None and repr(meta) == "FileMetadata object PADDING"


def test_keep_memory_pattern(five_files):
    sched = schedule(five_files, padding=False)
    keep = [float(start > meta.start_ts) for meta, start, _ in (sched[n] for n in range(len(sched)))]
    assert keep == [0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1]


def test_max_consecutive_batch(five_files):
    sched = schedule(five_files, padding=True, max_consecutive_batch=2)
    chunks = [(os.path.basename(m.path)[0], m.start_ts) for m in sched.files]
    assert chunks == [("a", 0), ("a", 200000), ("a", 400000), ("b", 0), ("b", 200000), ("c", 0),
                      ("d", 0), ("d", 200000), ("e", 0)]
    assert list(sched.actual_durations) == [200000, 200000, 100000, 200000, 100000, 200000,
                                            200000, 200000, 100000]
    # every entry starts with keep_memory 0, each plays at most 2 chunks
    items = [sched[n] for n in range(len(sched))]
    for meta, start, duration in items:
        if not meta.is_padding():
            assert meta.start_ts <= start < meta.start_ts + 2 * TOTAL


def test_reschedule_keeps_durations(five_files):
    sched = schedule(five_files, padding=True)
    again = sched.reschedule(2, 2, 50_000, shuffle=False)
    assert len(again.files) == 9 and again.padding
    assert [m.duration for m in again.files[:3]] == [500000] * 3


def test_balanced_assignment_minimises_padding(five_files, caplog):
    sched = schedule(five_files, padding=True, balanced=True)
    # longest first to the least loaded slot: a(500) -> 0, d(400) -> 1, b(300) -> 1, c(200) -> 0,
    # e(100) -> 0 ... loads 800 / 700
    names = [[os.path.basename(sched.files[i].path)[0] for i in idx] for idx in sched.slot_files]
    assert names == [["a", "c", "e"], ["d", "b"]]
    assert len(sched) == 16
    with caplog.at_level(logging.WARNING, logger="evstream.data.scheduler"):
        nopad = schedule(five_files, padding=False, balanced=True)
    assert len(nopad) == 14
    # every file is read at least in part
    seen = {os.path.basename(m.path)[0] for m, _, _ in (nopad[n] for n in range(len(nopad)))}
    assert seen == set("abcd")


def test_balanced_equal_files_use_all_slots(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"f{i}.h5"
        p.write_bytes(b"")
        paths.append(str(p))
    durs = [600000, 100000, 100000, 100000, 100000, 100000]
    rr = Scheduler.create_schedule(paths, durs, 50_000, 2, 2, shuffle=False, padding=True)
    bal = Scheduler.create_schedule(paths, durs, 50_000, 2, 2, shuffle=False, padding=True,
                                    balanced=True)
    assert len(rr) == 2 * 8 and len(bal) == 2 * 6      # 800k vs 600k in the longest slot


def test_batch_size_reduced_when_few_files(five_files, caplog):
    with caplog.at_level(logging.WARNING, logger="evstream.data.scheduler"):
        sched = Scheduler.create_schedule(five_files[:2], [500000, 300000], 50_000, 2, 4,
                                          shuffle=False)
    assert sched.batch_size == 2
    assert "batch_size reduced to 2" in caplog.text
    with pytest.raises(ArgumentError):
        Scheduler([FileMetadata(five_files[0], 100000, 50000, 2)], TOTAL, 3)


def test_missing_files_dropped_with_warning(five_files, caplog, tmp_path):
    ghost = str(tmp_path / "ghost.h5")
    with caplog.at_level(logging.WARNING, logger="evstream.data.scheduler"):
        sched = Scheduler.create_schedule(five_files[:2] + [ghost], [500000, 300000, 100000],
                                          50_000, 2, 2, shuffle=False)
    assert "1 missing file(s) dropped" in caplog.text and len(sched.files) == 2
    with pytest.raises(MissingFileError):
        Scheduler.create_schedule([ghost], [100000], 50_000, 2, 1)


def test_empty_schedule(caplog):
    with caplog.at_level(logging.WARNING, logger="evstream.data.scheduler"):
        sched = Scheduler([], TOTAL, 2)
    assert len(sched) == 0 and "empty schedule" in caplog.text


def test_shuffle_is_seeded_and_reproducible(five_files):
    s1 = Scheduler.create_schedule(five_files, [DURATIONS[k] for k in "abcde"], 50_000, 2, 2,
                                   shuffle=True, seed=3)
    s2 = Scheduler.create_schedule(five_files, [DURATIONS[k] for k in "abcde"], 50_000, 2, 2,
                                   shuffle=True, seed=3)
    assert [m.path for m in s1.files] == [m.path for m in s2.files]
    assert s1.base_seed == s2.base_seed
    before = [m.path for m in s1.files]
    s1.shuffle(seed=11)
    s2.shuffle(seed=11)
    assert [m.path for m in s1.files] == [m.path for m in s2.files]
    assert sorted(before) == sorted(m.path for m in s1.files)


def test_remove_files(five_files):
    sched = schedule(five_files, padding=True)
    sched.remove_files([five_files[4]])
    assert len(sched.files) == 4 and len(sched) == 2 * 7


def test_file_metadata_repr_eq_and_endings(tmp_path):
    m = FileMetadata("data/x.h5", 10000000, 50000, 3)
    assert repr(m) == ("FileMetadata object data/x.h5\n\tstart_ts 0us delta_t 50000us, num_tbins 3, "
                       "total duration 10000000us\n")
    assert repr(FileMetadata("y_td.dat", 5, 1, 1, labels="lab")).endswith("\nlabels lab")
    assert m == FileMetadata("data/x.h5", 99, 50000, 3)            # duration ignored
    assert m != FileMetadata("data/x.h5", 99, 50000, 3, start_ts=150000)
    assert hash(m) == hash(FileMetadata("data/x.h5", 10000000, 50000, 3))
    assert m.get_remaining_duration() == 10000000 and m.is_precomputed()
    assert FileMetadata("rec_td.dat", 1, 1, 1).get_ending() == "_td.dat"
    assert FileMetadata("rec.DAT", 1, 1, 1).is_precomputed() is False
    assert FileMetadata("rec.HDF5", 1, 1, 1).is_precomputed()
    with pytest.raises(ArgumentError):
        FileMetadata("rec.txt", 1, 1, 1).get_ending()


def test_durations_and_sizes(tmp_path):
    h5 = write_tensor_file(tmp_path / "t.h5", tensor_rows(7))
    assert get_duration(h5) == 7 * 50000
    assert _get_original_size_file(h5) == (720, 1280)
    legacy = write_tensor_file(tmp_path / "legacy.h5", tensor_rows(2, shape=(2, 90, 160)),
                               legacy_shift=2)
    assert _get_original_size_file(legacy) == (360, 640)
    # DAT duration = last timestamp, even when the first event is late (original: the span)
    ev = synthetic_events(400_000, first_t=250_000)
    dat = write_dat(tmp_path / "late_td.dat", ev)
    assert get_duration(dat) == int(ev["t"][-1]) and ev["t"][0] >= 250_000
    assert FileMetadata(dat, 0, 1, 1).get_original_size() == (240, 320)
    raw = write_raw(tmp_path / "r.raw", ev, fmt="evt2")
    shifted = RawReader(raw).read_all()["t"]        # RAW times are time-shifted, as OpenEB does
    assert get_duration(raw) == int(shifted[-1]) and shifted[0] < 1000
    assert _get_original_size_file(raw) == (240, 320)
    assert not os.path.exists(tmp_path / "r_info.json")               # nothing written beside it
    boxes = save_boxes(tmp_path / "b_bbox.npy", make_boxes([10, 20, 777]))
    assert get_duration(boxes) == 777
    assert _get_durations([h5, dat]) == [350000, int(ev["t"][-1])]
    with pytest.raises(FileFormatError):
        get_duration(tmp_path / "x.txt")
    with pytest.raises(FileFormatError):
        _get_original_size_file(boxes)


def test_late_first_event_is_played(tmp_path):
    """The tail of a DAT whose first event is late is scheduled (quirk 1 of the original)."""
    ev = synthetic_events(600_000, first_t=300_000)
    dat = write_dat(tmp_path / "late_td.dat", ev)
    sched = Scheduler.create_schedule([dat], [], 50_000, 2, 1, shuffle=False)
    starts = [sched[n][1] for n in range(len(sched))]
    assert starts == [0, 100000, 200000, 300000, 400000, 500000]
