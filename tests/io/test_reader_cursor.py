"""Cursor semantics of every reader, on the cases pinned by OpenEB's public NPY-reader tests
(docs/readers.md §5), replayed on the same events stored as NPY boxes, NPY
events, DAT and RAW EVT 2.0 / 2.1 (both layouts) / 3.0.

The readers follow two ``current_time`` rules (docs/readers.md §1): DAT / NPY keep the time
of the last event returned, RAW the time of the next event not yet returned, and after a window
that reaches the end of the file the window end. Each case states both expectations."""

import numpy as np
import pytest

from evstream.errors import ArgumentError, SeekError
from evstream.io import DatWriter, EventCD, EventNpyReader, RawWriter, open_reader

BOX_DTYPE = [("t", "u8"), ("x", "f4"), ("y", "f4"), ("w", "f4"), ("h", "f4"),
             ("class_id", "u1"), ("class_confidence", "f4")]
FORMATS = ["npy_boxes", "npy_events", "dat", "evt2", "evt3", "evt21", "evt21_legacy"]
RAW_FORMATS = ("evt2", "evt3", "evt21", "evt21_legacy")


def rule(fmt, dat_value, raw_value):
    """The expected value under the reader's cursor rule."""
    return raw_value if fmt in RAW_FORMATS else dat_value


def write_file(tmp_path, times, fmt):
    """Store events at ``times`` in format ``fmt``; return its path and the stored x column."""
    rng = np.random.default_rng(len(times))
    n = len(times)
    x = rng.integers(0, 300, n)
    if fmt == "npy_boxes":
        boxes = np.zeros(n, dtype=BOX_DTYPE)
        boxes["t"], boxes["x"] = times, x
        path = tmp_path / "boxes.npy"
        np.save(path, boxes)
        return path, x
    events = np.zeros(n, dtype=EventCD)
    events["t"], events["x"] = times, x
    events["y"] = rng.integers(0, 200, n)
    events["p"] = rng.integers(0, 2, n)
    if fmt == "npy_events":
        path = tmp_path / "events.npy"
        np.save(path, events)
    elif fmt == "dat":
        path = tmp_path / "events.dat"
        with DatWriter(path, height=240, width=320) as writer:
            writer.write(events)
    else:
        path = tmp_path / f"events_{fmt}.raw"
        layout = "legacy" if fmt.endswith("_legacy") else "little"
        with RawWriter(path, height=240, width=320, format=fmt.split("_")[0],
                       evt21_layout=layout) as writer:
            writer.write(events)
    return path, x


def reader_for(tmp_path, times, fmt):
    path, x = write_file(tmp_path, times, fmt)
    if fmt == "npy_boxes":                   # box files are read by the box reader only
        return EventNpyReader(path), x
    return open_reader(path, do_time_shifting=False), x


def state(reader):
    return reader.current_event_index(), reader.is_done(), reader.current_time


T_A = [99999] * 3 + [199999] * 4
T_B = [99999] * 3 + [100000] * 2 + [199999] * 2
T_C = [100, 200, 99999, 100000, 100001, 199998, 199999]
T_D = [99999] * 3 + [100000, 100001, 199998, 199999]
T_E = [99999] * 3 + [100000] * 3 + [199999]
T_F = [99997, 99998, 99999, 100000, 100001, 100002, 199999]


@pytest.mark.parametrize("fmt", FORMATS)
class TestCursor:
    def test_load_n_events(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_A, fmt)
        got = reader.load_n_events(4)
        np.testing.assert_array_equal(got["x"], x[:4])
        assert state(reader) == (4, False, 199999)   # last returned == next event here
        reader, _ = reader_for(tmp_path, T_A, fmt)
        assert len(reader.load_n_events(7)) == 7
        assert state(reader) == (7, True, 199999)

    def test_load_n_events_past_end_then_reset(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_A, fmt)
        reader.load_n_events(3)
        got = reader.load_n_events(10)
        np.testing.assert_array_equal(got["x"], x[3:])
        assert state(reader) == (7, True, 199999)
        reader.reset()
        assert state(reader) == (0, False, 0)

    def test_load_delta_t(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_B, fmt)
        got = reader.load_delta_t(100000)
        np.testing.assert_array_equal(got["x"], x[:3])
        assert state(reader) == (3, False, 100000)
        got = reader.load_delta_t(1000000)
        np.testing.assert_array_equal(got["x"], x[3:])
        assert state(reader) == (7, True, rule(fmt, 199999, 100000 + 1000000))

    def test_n_events_then_delta_t(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_B, fmt)
        reader.load_n_events(3)
        assert reader.current_time == rule(fmt, 99999, 100000)
        got = reader.load_delta_t(15000)
        start = rule(fmt, 99999, 100000)
        np.testing.assert_array_equal(got["x"], x[3:5])
        assert state(reader) == (5, False, start + 15000)

    def test_one_event_then_delta_t_starts_at_the_next_event(self, tmp_path, fmt):
        """OpenEB's recording.raw case: load_n_events(1) then load_delta_t(100) leaves
        current_time one µs later under the RAW rule (its next event is 1 µs after the first)."""
        reader, x = reader_for(tmp_path, T_F, fmt)
        reader.load_n_events(1)
        got = reader.load_delta_t(100)
        np.testing.assert_array_equal(got["x"], x[1:6])
        assert reader.current_time == rule(fmt, 99997, 99998) + 100

    def test_conformance_example(self, tmp_path, fmt):
        """Events at t = 0, 10, 20, 30, ...: load_n_events(3) -> current_time 20 (DAT) / 30
        (RAW); then load_delta_t(10) returns the event at 30 for RAW (window [30, 40))."""
        times = list(range(0, 100, 10))
        reader, x = reader_for(tmp_path, times, fmt)
        reader.load_n_events(3)
        assert reader.current_time == rule(fmt, 20, 30)
        got = reader.load_delta_t(10)
        assert list(got["t"]) == rule(fmt, [], [30])
        assert reader.current_time == rule(fmt, 30, 40)

    def test_seek_event_forward_and_back(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_C, fmt)
        reader.seek_event(3)
        assert state(reader) == (3, False, 99999)
        reader.seek_event(1)
        assert state(reader) == (1, False, 100)
        np.testing.assert_array_equal(reader.load_n_events(2)["x"], x[1:3])
        reader.seek_event(0)
        assert state(reader) == (0, False, 0)

    def test_seek_past_end(self, tmp_path, fmt):
        reader, _ = reader_for(tmp_path, T_D, fmt)
        reader.seek_event(900)
        assert state(reader) == (7, True, 199999)
        reader.seek_time(150000)
        assert state(reader) == (5, False, 150000)

    def test_seek_time(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_E, fmt)
        reader.seek_time(100000)
        assert state(reader) == (3, False, 100000)
        np.testing.assert_array_equal(reader.load_n_events(1)["x"], x[3:4])
        reader.seek_time(9000)
        assert state(reader) == (0, False, 9000)
        reader.seek_time(20000000)
        assert state(reader) == (7, True, 199999)

    def test_seek_time_lands_on_next_event_and_duration(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_F, fmt)
        reader.seek_time(100001)
        assert state(reader) == (4, False, 100001)
        np.testing.assert_array_equal(reader.load_n_events(1)["x"], x[4:5])
        assert reader.duration_s == pytest.approx((199999 - 99997) * 1e-6)

    def test_mixed(self, tmp_path, fmt):
        reader, x = reader_for(tmp_path, T_B, fmt)
        got = reader.load_mixed(2, 100000)       # event limit first
        np.testing.assert_array_equal(got["x"], x[:2])
        assert state(reader) == (2, False, 99999)   # last returned == next event here
        got = reader.load_mixed(10, 2)           # time limit first: [99999, 100001)
        np.testing.assert_array_equal(got["x"], x[2:5])
        assert state(reader) == (5, False, 100001)
        got = reader.load_mixed(1, 10**6)        # event limit: the next event is at 199999
        np.testing.assert_array_equal(got["x"], x[5:6])
        assert state(reader) == (6, False, rule(fmt, 199999, 199999))
        got = reader.load_mixed(5, 10)           # end of file inside the window
        assert state(reader) == (7, True, rule(fmt, 199999, 199999 + 10))

    def test_bad_arguments(self, tmp_path, fmt):
        reader, _ = reader_for(tmp_path, T_A, fmt)
        for call in (lambda: reader.load_n_events(0), lambda: reader.load_delta_t(0),
                     lambda: reader.load_mixed(0, 5)):
            with pytest.raises(ArgumentError, match=str(reader.path)):
                call()
        with pytest.raises(SeekError, match="non-negative"):
            reader.seek_event(-1)
        with pytest.raises(SeekError, match="non-negative"):
            reader.seek_time(-5)


def test_legacy_box_fields_are_renamed(tmp_path):
    legacy = np.zeros(3, dtype=[("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"),
                                ("h", "<f4"), ("class_id", "u1"), ("confidence", "<f4"),
                                ("track_id", "<u4")])
    legacy["ts"] = [5, 6, 7]
    legacy["confidence"] = [0.5, 0.25, 1.0]
    legacy["class_id"] = [1, 2, 3]
    np.save(tmp_path / "old_bbox.npy", legacy)
    reader = EventNpyReader(tmp_path / "old_bbox.npy")
    boxes = reader.load_delta_t(10_000_000)
    from evstream.io import EventBbox
    assert boxes.dtype == EventBbox
    np.testing.assert_array_equal(boxes["t"], [5, 6, 7])
    np.testing.assert_array_equal(boxes["class_confidence"], [0.5, 0.25, 1.0])
    np.testing.assert_array_equal(boxes["class_id"], [1, 2, 3])


def test_chunked_loads_equal_whole_file(tmp_path):
    """Loads that cross the internal buffer boundary many times give the file's events."""
    rng = np.random.default_rng(3)
    n = 20000
    events = np.zeros(n, dtype=EventCD)
    events["t"] = np.cumsum(rng.integers(0, 5, n))
    events["x"], events["y"] = rng.integers(0, 320, n), rng.integers(0, 240, n)
    events["p"] = rng.integers(0, 2, n)
    for fmt, path in (("dat", tmp_path / "a.dat"), ("evt3", tmp_path / "a.raw")):
        if fmt == "dat":
            with DatWriter(path, 240, 320) as w:
                w.write(events)
            reader = open_reader(path, buffer_events=997)
        else:
            with RawWriter(path, 240, 320, format="evt3") as w:
                w.write(events)
            reader = open_reader(path, do_time_shifting=False, max_events=997)
        pieces = []
        while not reader.is_done():
            pieces.append(reader.load_delta_t(777))
        np.testing.assert_array_equal(np.concatenate(pieces), events)
        reader.seek_time(int(events["t"][12345]))
        first = np.searchsorted(events["t"], events["t"][12345])
        assert reader.current_event_index() == first
        np.testing.assert_array_equal(reader.load_n_events(3000), events[first:first + 3000])
