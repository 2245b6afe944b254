"""Window ends, the running-maximum time repair, and which events make each window."""

import warnings

import h5py
import numpy as np
import pytest

import evstream.io.time_order as time_order
from evstream.errors import EventArrayError, FileFormatError, RvtRuleError
from evstream.io import RawWriter
from evstream.rvt.events import RepairedEvents
from evstream.rvt.window_events import iter_window_events
from evstream.rvt.windows import repr_index_of_frames, window_ends
from rvt_data import events, write_dat


@pytest.mark.parametrize("f0,before", [(100_000, []), (150_000, [100_000]),
                                       (250_000, [100_000, 150_000, 200_000]),
                                       (300_000, [100_000, 150_000, 200_000, 250_000]),
                                       (100_001, [50_001])])
def test_ends_before_first_frame(f0, before):
    assert window_ends(np.array([f0]), np.zeros(0, int)).tolist() == before + [f0]


def test_ends_between_frames_gen1_and_linspace_truncation():
    ends = window_ends(np.array([100_000, 350_000, 850_000]), np.array([1, 2]))
    # gen1: 2 ends per 250 ms (125 ms apart), 4 in a 2-period gap, the last frame closes the list
    assert ends.tolist() == [100_000, 225_000, 350_000, 475_000, 600_000, 725_000, 850_000]
    ends = window_ends(np.array([100_000, 200_003]), np.array([1]))
    assert ends.tolist() == [100_000, 150_001, 200_003]          # 50001.5 truncated
    assert repr_index_of_frames(ends, np.array([100_000, 200_003])).tolist() == [0, 2]
    with pytest.raises(RvtRuleError):
        repr_index_of_frames(ends, np.array([150_000]))


def test_gen4_style_ends_about_50ms_apart():
    frames = np.array([100_000, 200_002, 300_004])
    ends = window_ends(frames, np.array([1, 1]))
    assert ends.tolist() == [100_000, 150_001, 200_002, 250_003, 300_004]


def test_dat_backwards_times_are_repaired_in_file_order(tmp_path):
    ev = events([1, 2, 3, 4, 5], 0, [0, 1, 0, 1, 1], [10, 20, 30, 40, 50])
    path = tmp_path / "back_td.dat"
    write_dat(path, ev, 240, 304, patched_times={2: 5, 3: 25})       # 10 20 5 25 50 on disk
    src = RepairedEvents(path)
    ev = src.read(0, 5)
    x, y, p, r = (ev[k] for k in "xypt")
    assert x.tolist() == [1, 2, 3, 4, 5]                   # not reordered
    assert r.tolist() == [10, 20, 20, 25, 50]              # running maximum
    assert p.tolist() == [0, 1, 0, 1, 1]


def test_random_access_equals_sequential(tmp_path, monkeypatch):
    monkeypatch.setattr(time_order, "TIME_BLOCK", 4)
    rng = np.random.default_rng(3)
    t = np.sort(rng.integers(0, 1000, 50))
    ev = events(rng.integers(0, 304, 50), rng.integers(0, 240, 50), rng.integers(0, 2, 50), t)
    back = {7: 1, 13: 3, 30: 2}                            # backwards steps across blocks
    write_dat(tmp_path / "r_td.dat", ev, 240, 304, back)
    src = RepairedEvents(tmp_path / "r_td.dat")
    raw = t.copy()
    for i, v in back.items():
        raw[i] = v
    expected = np.maximum.accumulate(raw)
    assert src.read(0, 50)["t"].tolist() == expected.tolist()
    for start in (1, 5, 8, 14, 31, 49):
        assert src.read(start, 50)["t"].tolist() == expected[start:].tolist()
    for tau in (0, int(expected[20]), int(expected[20]) + 1, 2000):
        assert src.first_at_or_after(tau) == int(np.searchsorted(expected, tau, "left"))
        assert src.first_at_or_after(tau, right=True) == int(np.searchsorted(expected, tau, "right"))


def test_rvt_h5_polarity_clip_and_checks(tmp_path):
    def h5(name, p, t):
        with h5py.File(tmp_path / name, "w") as f:
            g = f.create_group("events")
            for k, v in (("x", [1, 2, 3]), ("y", [0, 0, 0]), ("p", p), ("t", t)):
                g.create_dataset(k, data=np.asarray(v))
        return RepairedEvents(tmp_path / name)
    ev = h5("a_td.h5", [-1, 1, 0], [0, 5, 3]).read(0, 3)
    x, y, p, r = (ev[k] for k in "xypt")
    assert p.tolist() == [0, 1, 0] and r.tolist() == [0, 5, 5]
    with pytest.raises(EventArrayError, match="polarity"):
        h5("b_td.h5", [0, 2, 0], [0, 5, 6]).read(0, 3)
    with pytest.raises(EventArrayError, match="negative"):
        h5("c_td.h5", [0, 1, 0], [-4, 5, 6]).read(0, 3)
    with h5py.File(tmp_path / "d_td.h5", "w") as f:
        f.create_dataset("events/t", data=np.arange(3))
    with pytest.raises(FileFormatError, match="events/x"):
        RepairedEvents(tmp_path / "d_td.h5")


def test_raw_recordings_are_read_through_evstream_io(tmp_path):
    ev = events([1, 2, 3], [4, 5, 6], [1, 0, 1], [100, 200, 300])
    with RawWriter(tmp_path / "s.raw", 240, 304, "evt3") as w:
        w.write(ev)
    src = RepairedEvents(tmp_path / "s.raw")
    ev = src.read(0, src.count)
    x, y, p, r = (ev[k] for k in "xypt")
    assert x.tolist() == [1, 2, 3] and p.tolist() == [1, 0, 1]
    assert np.diff(r).tolist() == [100, 100] and src.geometry == (240, 304)


def test_window_membership_edges_duration_and_count(tmp_path, monkeypatch):
    monkeypatch.setattr("evstream.rvt.events.READ_EVENTS", 3)
    monkeypatch.setattr("evstream.rvt.window_events.COUNT_EVENTS", 2)
    t = [49_999, 50_000, 100_000, 100_001, 150_000, 150_000, 150_001, 200_000]
    write_dat(tmp_path / "e_td.dat", events(np.arange(8), 0, 0, t), 240, 304)
    src = RepairedEvents(tmp_path / "e_td.dat")
    ends = np.array([100_000, 150_000, 200_000])
    got = [w["t"].tolist() for w in iter_window_events(src, ends)]
    # closed windows [end - 50 ms, end]: 50000 and 100000 are on edges; 100000 and 150000 are
    # in two windows each
    assert got == [[50_000, 100_000], [100_000, 100_001, 150_000, 150_000],
                   [150_000, 150_000, 150_001, 200_000]]
    assert [w["t"].tolist() for w in iter_window_events(src, ends, first=1)] == got[1:]
    counted = [w["x"].tolist() for w in iter_window_events(src, ends, "count")]
    assert counted == [[1, 2], [4, 5], [6, 7]]                   # the last 2 events <= end
    assert [w["x"].tolist() for w in iter_window_events(src, ends, "count", first=2)] == [[6, 7]]


def test_rvt_h5_geometry_is_checked(tmp_path):
    from evstream.errors import GeometryError
    from evstream.rvt.sequence import RecordingSequence
    from rvt_data import boxes

    for name, size in (("ok", (240, 304)), ("bad", (480, 640)), ("none", None)):
        with h5py.File(tmp_path / f"{name}_td.dat.h5", "w") as f:
            for k, v in (("x", [1, 2]), ("y", [0, 0]), ("p", [0, 1]), ("t", [0, 5])):
                f.create_dataset(f"events/{k}", data=np.asarray(v))
            if size:
                f["events/height"], f["events/width"] = size
        np.save(tmp_path / f"{name}_bbox.npy", boxes([(200_000, 5, 5, 40, 40, 0)]))
        seq = RecordingSequence(tmp_path / f"{name}_td.dat.h5", tmp_path / f"{name}_bbox.npy")
        if name == "bad":
            with pytest.raises(GeometryError, match="640x480"):
                seq.frames(0, 1)
        else:
            assert seq.frames(0, seq.num_windows).sum() == 0     # events before the windows


@pytest.mark.parametrize("dataset", ["gen1", "gen4"])
@pytest.mark.parametrize("mode", ["duration", "count"])
def test_frames_in_any_order_equal_the_reference(tmp_path, monkeypatch, dataset, mode):
    """Frame ranges asked in stream order, backwards, overlapping and repeated (runs of 3
    windows, 700-event COUNT windows, backwards DAT times): each equals the numpy reference,
    whether the events come from a seek or are kept from the previous load."""
    from rvt_data import boxes, random_events
    from rvt_reference import frames_reference, read_dat_whole

    from evstream.rvt.sequence import RecordingSequence

    monkeypatch.setattr("evstream.rvt.window_events.RUN_WINDOWS", 3)
    monkeypatch.setattr("evstream.rvt.window_events.COUNT_EVENTS", 700)
    h, w, period = (240, 304, 250_000) if dataset == "gen1" else (720, 1280, 16_667)
    rng = np.random.default_rng(7)
    ev = random_events(rng, 30_000, 1_300_000, h, w)
    back = {i: int(ev["t"][i]) // 2 for i in range(500, len(ev), 997)}   # backward steps
    write_dat(tmp_path / "s_td.dat", ev, h, w, back)
    np.save(tmp_path / "s_bbox.npy",
            boxes([(t, 5, 5, 40, 40, 0) for t in range(200_000, 1_250_000, period)]))
    seq = RecordingSequence(tmp_path / "s_td.dat", tmp_path / "s_bbox.npy", dataset, True, mode)
    x, y, p, t = read_dat_whole(tmp_path / "s_td.dat")
    n = seq.num_windows
    ref = frames_reference(x, y, p, t, seq.plan.ends, h, w, ds2=dataset == "gen4", mode=mode,
                           count=700)
    assert n >= 8 and ref.sum() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # the reader's unsorted-times warning
        for a, b in [(0, 2), (2, 4), (4, 5), (5, n), (1, 3), (n - 1, n), (0, n), (3, 7), (3, 7),
                     (6, 8), (2, 3)]:
            assert np.array_equal(seq.frames(a, b), ref[a:b]), (a, b)


def test_other_readers_are_repaired_the_same_way(tmp_path, monkeypatch):
    """A format whose reader has no time_order (here NPY) goes through RepairedReader: the
    running maximum in file order, -1 polarities clipped to 0, exact seeks on the repaired
    times across index blocks, the late events counted once."""
    monkeypatch.setattr(time_order, "TIME_BLOCK", 8)
    rng = np.random.default_rng(4)
    t = np.sort(rng.integers(0, 10_000, 100))
    t[[9, 40, 41, 77]] = [0, 3, 2, 100]                      # backward steps
    ev = events(rng.integers(0, 304, 100), rng.integers(0, 240, 100),
                np.where(rng.integers(0, 2, 100) == 1, 1, -1), t)
    np.save(tmp_path / "s_td.npy", ev)
    expected = np.maximum.accumulate(t)
    with pytest.warns(UserWarning, match="not sorted"):     # once, at the first decode
        src = RepairedEvents(tmp_path / "s_td.npy")
        got = src.read(0, 100)
    assert got["t"].tolist() == expected.tolist() and got["x"].tolist() == ev["x"].tolist()
    assert got["p"].tolist() == np.maximum(ev["p"], 0).tolist()
    for tau in (0, 1, int(expected[40]), int(expected[77]) + 1, 20_000):
        k = int(np.searchsorted(expected, tau))
        assert src.seek_time(tau) == k
        assert src.load_until(int(expected[min(k + 5, 99)]))["t"].tolist() == \
            expected[k:np.searchsorted(expected, expected[min(k + 5, 99)], "right")].tolist()
    assert src.reader.time_repaired_count == int(np.sum(t < expected))


def test_repaired_seek_reads_the_inner_reader_once(tmp_path, monkeypatch):
    """A seek by repaired time through RepairedReader (here on RAW EVT 3.0, whose every seek
    decodes from a checkpoint) moves the inner reader once: the block whose times located the
    target serves the events from within it (it used to seek three times: the block for the
    search, the block again for the running maximum before the cursor, then the cursor). The
    events read after each seek, forwards and back, are the file's."""
    monkeypatch.setattr(time_order, "TIME_BLOCK", 64)
    rng = np.random.default_rng(7)
    n = 2_000
    t = np.sort(rng.integers(0, 400_000, n))
    ev = events(rng.integers(0, 304, n), rng.integers(0, 240, n), rng.integers(0, 2, n), t)
    path = tmp_path / "s_td.raw"
    with RawWriter(path, 240, 304, "evt3") as w:
        w.write(ev)
    src = RepairedEvents(path)
    stored = src.read(0, n)
    shift = int(stored["t"][0] - t[0])                  # RAW times count from a TIME_HIGH word
    assert all(np.array_equal(stored[f], ev[f]) for f in "xyp")
    assert np.array_equal(stored["t"], t + shift)
    t = stored["t"]
    inner = src.reader._inner
    seeks = []
    original = inner.seek_event
    monkeypatch.setattr(inner, "seek_event", lambda k: (seeks.append(k), original(k)))
    for tau in (300_000, 100_000, 100_000, 250_001, 5, 399_999, 100_000):
        k = int(np.searchsorted(t, tau))
        del seeks[:]
        assert src.seek_time(tau) == k
        end = int(t[min(k + 150, n - 1)])
        assert np.array_equal(src.load_until(end), stored[k:np.searchsorted(t, end, "right")])
        assert len(seeks) <= 1, (tau, seeks)


def test_copy_repaired_clips_polarity_and_repairs_time_in_one_pass():
    from evstream.io import EventCD
    from evstream.io.dtypes import event_words
    from evstream.rvt.events import copy_repaired
    src = np.zeros(5, EventCD)
    src["x"], src["y"] = [1, 65535, 3, 4, 5], [7, 8, 65535, 10, 11]
    src["p"], src["t"] = [-1, 1, 0, -32768, 1], [5, 3, 9, 9, 2]
    dst = np.zeros(5, EventCD)
    running, late = copy_repaired(event_words(src), event_words(dst), 4, 2)
    assert dst["x"].tolist() == src["x"].tolist() and dst["y"].tolist() == src["y"].tolist()
    assert dst["p"].tolist() == [0, 1, 0, 0, 1]
    assert dst["t"].tolist() == [5, 5, 9, 9, 9]
    assert (running, late) == (9, 1)              # late: indices 1 and 4, counted from 2
