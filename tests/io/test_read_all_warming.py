"""``read_all`` (the whole-file path of ``load_events``) decodes in steps and has a
:class:`~evstream.utils.page_warmer.PageWarmer` fault its output in ahead of each step: every
format gives the written events, the warmer follows the decoded count to the end, and it has
stopped when ``read_all`` returns or raises, also when the output grows."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import evstream.io.reader as reader_module
from evstream.io import DatWriter, load_events, open_reader
from evstream.utils.page_warmer import PageWarmer

from raw_files import row_run_events, write_raw

N_EVENTS = 1_300_000          # 20.8 MB of EventCD: more than one read_all step and warmer chunk


@pytest.fixture(scope="module")
def events():
    return row_run_events(N_EVENTS, seed=3)


@pytest.fixture(scope="module", params=["evt3", "evt2", "evt21", "dat", "npy"])
def recording(request, events, tmp_path_factory):
    extension = request.param if request.param in ("dat", "npy") else "raw"
    path = tmp_path_factory.mktemp("read_all") / f"rec.{extension}"
    if request.param == "dat":
        with DatWriter(path, 240, 320) as w:
            w.write(events)
    elif request.param == "npy":
        np.save(path, events)
    else:
        write_raw(path, events, request.param)
    return path


class RecordingWarmer(PageWarmer):
    made: list[RecordingWarmer] = []

    def __init__(self, array, *args, **kwargs):
        self.array, self.progress, self.closed = array, [], False
        super().__init__(array, *args, **kwargs)
        RecordingWarmer.made.append(self)

    def advance(self, filled_bytes):
        self.progress.append(filled_bytes)
        super().advance(filled_bytes)

    def close(self):
        self.closed = True
        super().close()


@pytest.fixture(scope="module")
def expected(recording):
    """The recording read by 64 K-event counts (not read_all's path)."""
    with open_reader(recording, do_time_shifting=False) as reader:
        pieces = []
        while not reader.is_done():
            pieces.append(reader.load_n_events(1 << 16))
    return np.concatenate(pieces)


@pytest.fixture
def recorded(monkeypatch):
    RecordingWarmer.made = []
    monkeypatch.setattr(reader_module, "PageWarmer", RecordingWarmer)
    return RecordingWarmer.made


def warmer_threads() -> int:
    return sum(t.name == "evstream-page-warmer" for t in threading.enumerate())


def test_read_all_gives_every_event_and_warms_its_output_step_by_step(recording, events, expected,
                                                                    recorded):
    assert np.array_equal(expected[["x", "y", "p"]], events[["x", "y", "p"]])
    got = load_events(recording)
    assert np.array_equal(got, expected)
    (warmer,) = recorded
    assert warmer.closed and not warmer.active and warmer_threads() == 0
    assert len(warmer.array) >= N_EVENTS
    assert warmer.progress[0] == 0                  # warming starts before the first step
    steps = np.diff(warmer.progress)
    assert (steps > 0).all() and steps.max() <= reader_module._READ_ALL_STEP * events.itemsize
    assert warmer.progress[-1] == N_EVENTS * events.itemsize


def test_a_grown_output_gets_a_new_warmer_and_the_old_one_stops(recording, expected, recorded,
                                                                monkeypatch):
    with open_reader(recording, do_time_shifting=False) as reader:
        monkeypatch.setattr(reader, "_size_hint", lambda: 100_000)
        got = reader.read_all()
    assert np.array_equal(got, expected)
    assert len(recorded) >= 4                   # 100 K events doubled past 1.3 M
    assert all(w.closed for w in recorded) and warmer_threads() == 0
    assert [len(w.array) for w in recorded[1:]] == [2 * len(w.array) for w in recorded[:-1]]


def test_a_decode_error_stops_the_warmer(recording, recorded, monkeypatch):
    with open_reader(recording, do_time_shifting=False) as reader:
        decode = reader._decode_into
        calls = []

        def failing(out):
            calls.append(len(out))
            if len(calls) == 2:
                raise OSError("disk went away")
            return decode(out)
        monkeypatch.setattr(reader, "_decode_into", failing)
        with pytest.raises(OSError, match="disk went away"):
            reader.read_all()
    assert recorded and all(w.closed for w in recorded) and warmer_threads() == 0


@pytest.mark.parametrize("estimate", [None, 100_000])
def test_a_long_count_read_warms_its_array_step_by_step(recording, expected, recorded,
                                                        monkeypatch, estimate):
    """A count read of at least _WARM_COUNT_BYTES decodes in read_all's steps behind a warmer;
    with the file's events underestimated (100 K) its array grows, each one with a warmer."""
    monkeypatch.setattr(reader_module, "_WARM_COUNT_BYTES", 1 << 20)
    with open_reader(recording, do_time_shifting=False) as reader:
        if estimate is not None:
            monkeypatch.setattr(reader, "_size_hint", lambda: estimate)
        head = reader.load_n_events(1000)             # 16 KB: no warmer
        assert recorded == []
        got = reader.load_n_events(10 * N_EVENTS)     # the rest of the file
    assert np.array_equal(head, expected[:1000]) and np.array_equal(got, expected[1000:])
    assert recorded and all(w.closed for w in recorded) and warmer_threads() == 0
    assert (len(recorded) > 1) == (estimate is not None)
    step = reader_module._READ_ALL_STEP * got.itemsize
    for warmer in recorded:
        assert warmer.progress[0] == 0
        steps = np.diff(warmer.progress)       # the first also holds the events decoded before
        assert (steps > 0).all() and steps[0] <= 2 * step and (steps[1:] <= step).all()
    assert recorded[-1].progress[-1] == (N_EVENTS - 1000) * got.itemsize
