"""Whole-file RAW reads on several threads (``evstream.io.raw_parallel``): the result is the
one-thread read's, byte for byte (events, triggers, counters, seek index), whether the parts
join, fall back to one thread, cross time-base wraps or fail on a file that shrank."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import evstream.io.raw as raw
import evstream.io.raw_parallel as rp
from evstream.errors import FileFormatError, GeometryError
from evstream.io import EventCD, EventExtTrigger, RawReader
from evstream.io.evt3 import Evt3Decoder
from evstream.io.header import read_raw_header
from raw_files import RAW_KINDS, replace_header_lines, row_run_events, triggers_every, write_raw

CHECKPOINT = 1 << 8


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    """Parts of a few thousand words, so that small files are split; no index kept between reads."""
    monkeypatch.setattr(rp, "MIN_PART_WORDS", 1 << 10)
    monkeypatch.setattr(rp, "LEAD_IN_WORDS", 1 << 9)
    raw.COMPLETE_INDEXES.clear()
    yield
    raw.COMPLETE_INDEXES.clear()


@pytest.fixture
def joins(monkeypatch):
    """The events each parallel read joined (its parts' events, before any one-thread rest)."""
    joined = []
    original = rp._join

    def spy(*args):
        joined.append(original(*args))
        return joined[-1]
    monkeypatch.setattr(rp, "_join", spy)
    return joined


def read(path, threads, monkeypatch, **kwargs):
    """(events, triggers, counters, index arrays, out_of_bounds_count) of a fresh reader's
    read_all on ``threads`` threads."""
    monkeypatch.setattr(rp, "READ_ALL_THREADS", threads)
    raw.COMPLETE_INDEXES.clear()
    r = RawReader(path, index_interval_words=CHECKPOINT, **kwargs)
    ev = r.read_all()
    return result_of(r, ev)


def result_of(r, ev):
    index = r._stream.index
    return (ev.tobytes(), r.get_ext_trigger_events().tobytes(), r.decoder_counters,
            np.array(index.states).tobytes(), list(index.events_before),
            list(index.last_t_before), (index.complete, index.total_events, index.first_raw_t,
                                        index.last_raw_t), r.out_of_bounds_count, r.current_time)


def check_same(path, monkeypatch, threads=(2, 3, 4), **kwargs):
    one = read(path, 1, monkeypatch, **kwargs)
    assert one[6][0] and len(one[0]) > 0
    for k in threads:
        got = read(path, k, monkeypatch, **kwargs)
        for name, a, b in zip(("events", "triggers", "counters", "states", "events_before",
                               "last_t_before", "summary", "out_of_bounds", "current_time"), got, one):
            assert a == b, f"{k} threads: {name} differ"
    return one


@pytest.mark.parametrize("name", ["expelliarmus_evt3_sample.raw", "expelliarmus_evt2_sample.raw",
                                  "faery_evt2.raw"])
def test_real_samples_join_every_part(name, samples_dir, monkeypatch, joins):
    path = samples_dir / name
    threads_before = threading.active_count()
    one = check_same(path, monkeypatch)
    n = len(one[0]) // EventCD.itemsize
    assert joins == [n, n, n]            # 2, 3 and 4 threads: every part joined, none re-decoded
    assert threading.active_count() == threads_before      # the part threads have ended


@pytest.mark.parametrize("kind", sorted(RAW_KINDS))
def test_written_files_with_triggers(kind, tmp_path, monkeypatch, joins):
    ev = row_run_events(40_000, seed=3)
    path = write_raw(tmp_path / f"{kind}.raw", ev, kind, triggers=triggers_every(ev, 97))
    one = check_same(path, monkeypatch)
    assert len(one[1]) == len(triggers_every(ev, 97)) * EventExtTrigger.itemsize
    assert joins == [len(ev)] * 3


def outside_rows(tmp_path, kind):
    """A ``kind`` file whose header says 320x200 holding events on rows up to 239."""
    path = write_raw(tmp_path / f"{kind}.raw", row_run_events(40_000, seed=4), kind)
    replace_header_lines(path, drop=("geometry",), format_line=f"% format {kind.upper()};height=200;width=320")
    return path


@pytest.mark.parametrize("kind", ["evt2", "evt3"])
def test_dropped_events_counted_once(kind, tmp_path, monkeypatch, joins):
    path = outside_rows(tmp_path, kind)
    with pytest.warns(UserWarning, match="dropping events outside the 320x200"):
        one = check_same(path, monkeypatch, threads=(2,))
    ev = row_run_events(40_000, seed=4)
    assert one[7] == np.count_nonzero(ev["y"] >= 200) and joins == [len(ev) - one[7]]


def test_second_read_uses_the_index_and_moves_nothing(tmp_path, monkeypatch):
    path = write_raw(tmp_path / "a.raw", row_run_events(40_000, seed=5), "evt3")
    one = read(path, 1, monkeypatch)
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 3)
    r = RawReader(path, index_interval_words=CHECKPOINT)
    first = result_of(r, r.read_all())       # no complete index yet: parts are moved together
    moved = []
    original = rp.move_events
    monkeypatch.setattr(rp, "move_events", lambda *a: moved.append(a) or original(*a))
    again = result_of(r, r.read_all())       # complete index: each part decoded in its place
    assert moved == []
    assert first == one and again == one


def test_time_base_wraps_between_parts(tmp_path, monkeypatch, joins):
    # 40 s of sparse events: the EVT 3.0 time base (2^24 µs) wraps twice, so later parts start
    # after wraps their own decoders do not know of
    rng = np.random.default_rng(0)
    ev = np.zeros(60_000, dtype=EventCD)
    ev["t"] = np.sort(rng.integers(0, 40_000_000, len(ev)))
    ev["x"] = rng.integers(0, 320, len(ev))
    ev["y"] = rng.integers(0, 240, len(ev))
    path = write_raw(tmp_path / "long.raw", ev, "evt3", triggers=triggers_every(ev, 501))
    one = check_same(path, monkeypatch)
    decoded = np.frombuffer(one[0], dtype=EventCD)
    assert decoded["t"][-1] > 2 * (1 << 24)
    assert joins == [len(ev)] * 3


def evt3_file(tmp_path, words):
    """An EVT 3.0 file (320x240 header from the writer) holding exactly ``words``."""
    path = write_raw(tmp_path / "words.raw", row_run_events(1), "evt3")
    offset = read_raw_header(path).data_offset
    path.write_bytes(path.read_bytes()[:offset] + np.array(words, dtype="<u2").tobytes())
    return path


def test_a_lead_in_that_sets_no_row_falls_back_to_one_thread(tmp_path, monkeypatch, joins):
    # one ADDR_Y (row 5) at the start, then only TIME_HIGH and ADDR_X words: a later part's
    # lead-in never sees the row, so its decoder (row 0) disagrees and is not joined
    words = [0x8000, 0x0005]
    for th in range(1, 3000):
        words += [0x8000 | th] + [0x2000 | (x % 320) for x in range(th % 7, th % 7 + 3)]
    path = evt3_file(tmp_path, words)
    one = check_same(path, monkeypatch, threads=(2,))
    decoded = np.frombuffer(one[0], dtype=EventCD)
    assert len(decoded) == 3 * 2999 and np.all(decoded["y"] == 5)
    assert joins and joins[0] < len(decoded)     # part 0 only; the rest decoded on one thread


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_parts_that_overflow_their_region_fall_back(margin, tmp_path, monkeypatch, joins):
    monkeypatch.setattr(rp, "REGION_MARGIN", margin)
    monkeypatch.setattr(rp, "REGION_SLACK", 0)
    path = write_raw(tmp_path / "a.raw", row_run_events(30_000, seed=7), "evt3")
    check_same(path, monkeypatch, threads=(2, 3))
    assert joins == [0, 0]


def test_out_of_bounds_raise_after_a_parallel_read(tmp_path, monkeypatch):
    path = outside_rows(tmp_path, "evt3")
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 2)
    with pytest.raises(GeometryError, match="outside the 320x200"):
        RawReader(path, out_of_bounds="raise", index_interval_words=CHECKPOINT).read_all()


def test_a_file_that_shrinks_during_the_read_raises_naming_it(tmp_path, monkeypatch):
    path = write_raw(tmp_path / "a.raw", row_run_events(30_000, seed=2), "evt3")
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 2)
    r = RawReader(path, index_interval_words=CHECKPOINT)
    os.truncate(path, os.path.getsize(path) - 4000)      # inside the last part
    with pytest.raises(FileFormatError, match="file shrank") as err:
        r.read_all()
    assert str(path) in str(err.value)


def test_plan_parts_at_checkpoints():
    assert rp.plan_parts(10_000, 100, 3) == [rp.Part(0, 3300), rp.Part(3300, 6700),
                                             rp.Part(6700, 10_000)]
    assert rp.plan_parts(10_000, 100, 1) == []
    assert rp.plan_parts(1500, 100, 4) == []            # two parts would hold < 1024 words
    assert rp.plan_parts(3000, 4096, 2) == []           # both parts would start at word 0


def test_rebased_moves_counters_and_whole_wraps():
    d = Evt3Decoder(320, 240)
    start = d.get_state()
    start[[0, 1, 2, 3]] = [1, 5 << 12, 0, 5 << 12]       # started at TIME_HIGH 5, no wrap known
    start[8:] = [(5 << 12) + 7, 9, 0, 36, 1, 2]          # t, y, EM, base x, polarity, em_events
    start[[4, 5, 6, 7]] = [3, 2, 1, 0]                   # counters (the lead-in's)
    true = start.copy()
    true[[1, 2, 3]] = [(1 << 24) + (5 << 12), 1, 4096]  # one wrap before, first base 4096
    true[8] += 1 << 24
    true[[4, 5, 6, 7, 13]] = [10, 20, 30, 40, 50]
    later = start.copy()
    later[[1, 8]] = [9 << 12, (9 << 12) + 1]
    later[[4, 5, 6, 7, 13]] += [0, 1, 2, 3, 4]
    got = d.rebased(later, start, true)
    want = later.copy()
    want[[1, 2, 3, 8]] = [(1 << 24) + (9 << 12), 1, 4096, (1 << 24) + (9 << 12) + 1]
    want[[4, 5, 6, 7, 13]] = [10, 21, 32, 43, 54]
    np.testing.assert_array_equal(got, want)
    for slot, value in ((9, 10), (10, 1), (11, 0), (12, 0), (0, 0)):   # y, EM, x, pol, started
        other = true.copy()
        other[slot] = value
        assert d.rebased(later, start, other) is None
    other = true.copy()
    other[8] += 1                                        # times not one whole wrap apart
    assert d.rebased(later, start, other) is None


def index_of(path, threads, monkeypatch):
    """(index arrays, event_count, duration_s, last_event_time, 20 seeks' events) of a fresh
    reader whose seek index is built by event_count on ``threads`` threads."""
    monkeypatch.setattr(rp, "READ_ALL_THREADS", threads)
    raw.COMPLETE_INDEXES.clear()
    r = RawReader(path, index_interval_words=CHECKPOINT)
    count = r.event_count()
    index = r._stream.index
    summary = (np.array(index.states).tobytes(), list(index.events_before),
               list(index.last_t_before), index.total_events, index.first_raw_t, index.last_raw_t,
               count, r.duration_s, r.last_event_time(), r.decoder_counters)
    seeks = []
    for t in np.linspace(0, r.last_event_time(), 20).astype(int):
        r.seek_time(int(t))
        seeks.append(r.load_n_events(100).tobytes())
    return summary, seeks


@pytest.mark.parametrize("name", ["expelliarmus_evt3_sample.raw", "faery_evt2.raw"])
def test_seek_index_built_on_threads(name, samples_dir, monkeypatch, joins):
    one = index_of(samples_dir / name, 1, monkeypatch)
    assert joins == []
    for k in (2, 3):
        assert index_of(samples_dir / name, k, monkeypatch) == one
    assert joins == [one[0][6]] * 2              # each count joined every part


def test_seek_index_of_a_file_mostly_read_stays_on_one_thread(tmp_path, monkeypatch, joins):
    path = write_raw(tmp_path / "a.raw", row_run_events(40_000, seed=8), "evt3")
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 2)
    r = RawReader(path, max_events=1024, index_interval_words=CHECKPOINT)
    r.load_n_events(30_000)                      # the index covers most of the file
    assert not r._stream.index.complete
    assert r.event_count() == 40_000 and joins == []
    raw.COMPLETE_INDEXES.clear()
    r2 = RawReader(path, max_events=1024, index_interval_words=CHECKPOINT)
    r2.load_n_events(5_000)                      # an eighth: all of it on two threads is shorter
    assert not r2._stream.index.complete
    assert r2.event_count() == 40_000 and joins == [40_000]


# ---- read_first: the first N events on several threads (load_events(path, ev_count=N)) ------
def first_events(path, n, threads, monkeypatch, **kwargs):
    """(read_first(n)'s events, then the reader's first 100 events and index state) of a
    fresh reader on ``threads`` threads."""
    monkeypatch.setattr(rp, "READ_ALL_THREADS", threads)
    raw.COMPLETE_INDEXES.clear()
    r = RawReader(path, index_interval_words=CHECKPOINT, **kwargs)
    ev = r.read_first(n)
    after = (r.current_event_index(), r.current_time, r._stream.index.complete,
             r.load_n_events(100).tobytes())
    return ev, after


def one_thread_count_read(path, n, **kwargs):
    raw.COMPLETE_INDEXES.clear()
    return RawReader(path, index_interval_words=CHECKPOINT, **kwargs).load_n_events(n)


def check_first_same(path, monkeypatch, counts, threads=(2, 3)):
    total = RawReader(path, index_interval_words=CHECKPOINT).event_count()
    start = one_thread_count_read(path, 100).tobytes()
    for n in counts(total):
        want = one_thread_count_read(path, n)
        assert len(want) == min(n, total)
        for k in threads:
            got, after = first_events(path, n, k, monkeypatch)
            assert got.tobytes() == want.tobytes(), f"{k} threads, {n} events"
            assert after == (0, 0, False, start)          # as just opened


def some_counts(total):
    return (1, 999, total // 3, total // 2 + 17, total - 1, total, total + 5)


@pytest.mark.parametrize("name", ["expelliarmus_evt3_sample.raw", "expelliarmus_evt2_sample.raw",
                                  "faery_evt2.raw"])
def test_read_first_is_the_one_thread_count_read_on_real_samples(name, samples_dir, monkeypatch,
                                                                 joins):
    check_first_same(samples_dir / name, monkeypatch, some_counts)
    assert joins                        # the larger counts were decoded in joined parts


@pytest.mark.parametrize("kind", sorted(RAW_KINDS))
def test_read_first_on_written_files_with_triggers(kind, tmp_path, monkeypatch):
    ev = row_run_events(40_000, seed=3)
    path = write_raw(tmp_path / f"{kind}.raw", ev, kind, triggers=triggers_every(ev, 97))
    check_first_same(path, monkeypatch, some_counts, threads=(2,))


@pytest.mark.parametrize("margin", [0.2, 3.0])
def test_read_first_with_an_estimate_short_or_long(margin, tmp_path, monkeypatch, joins):
    """Short: the parts' events fall short and the rest is decoded on one thread; long: more
    words decoded than needed. Both give the one-thread read."""
    monkeypatch.setattr(raw, "READ_FIRST_MARGIN", margin)
    path = write_raw(tmp_path / "a.raw", row_run_events(40_000, seed=5), "evt3")
    check_first_same(path, monkeypatch, lambda total: (20_000,), threads=(2,))
    assert (joins[-1] < 20_000) == (margin < 1)     # joins[0]: event_count's index


def test_read_first_with_a_complete_index_decodes_to_the_checkpoint_after(tmp_path, monkeypatch,
                                                                          joins):
    path = write_raw(tmp_path / "a.raw", row_run_events(40_000, seed=6), "evt3")
    want = one_thread_count_read(path, 12_345)
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 2)
    r = RawReader(path, index_interval_words=CHECKPOINT)
    r.event_count()                                      # the seek index, complete
    index = r._stream.index
    joins.clear()
    assert r.read_first(12_345).tobytes() == want.tobytes()
    c = index.last_before_event(12_345) + 1
    assert joins == [index.events_before[c]]             # exactly the words up to checkpoint c
    assert index.complete and index.total_events == 40_000


def test_read_first_across_time_base_wraps(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    ev = np.zeros(60_000, dtype=EventCD)
    ev["t"] = np.sort(rng.integers(0, 40_000_000, len(ev)))
    ev["x"] = rng.integers(0, 320, len(ev))
    ev["y"] = rng.integers(0, 240, len(ev))
    path = write_raw(tmp_path / "long.raw", ev, "evt3")
    check_first_same(path, monkeypatch, lambda total: (55_000,), threads=(2, 4))


def test_read_first_counts_and_warns_dropped_events_once(tmp_path, monkeypatch):
    path = outside_rows(tmp_path, "evt3")
    with pytest.warns(UserWarning, match="dropping events"):
        want = one_thread_count_read(path, 20_000)
    kept = one_thread_count_read(path, 30_000, out_of_bounds="keep")
    kept = kept[kept["y"] < 200][:20_000]
    for field in ("x", "y", "p", "t"):                   # the events outside are the ones dropped
        assert np.array_equal(want[field], kept[field])
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 2)
    r = RawReader(path, index_interval_words=CHECKPOINT)
    with pytest.warns(UserWarning, match="dropping events outside the 320x200") as caught:
        got = r.read_first(20_000)
    assert got.tobytes() == want.tobytes() and len(caught) == 1
    assert r.out_of_bounds_count > 0
    with pytest.raises(GeometryError, match="outside the 320x200"):
        RawReader(path, out_of_bounds="raise", index_interval_words=CHECKPOINT).read_first(20_000)


def test_load_events_count_reads_use_read_first(samples_dir, monkeypatch):
    from evstream.io import load_events
    path = samples_dir / "expelliarmus_evt3_sample.raw"
    calls = []
    original = RawReader.read_first
    monkeypatch.setattr(RawReader, "read_first", lambda self, n: calls.append(n) or original(self, n))
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 2)
    got = load_events(path, ev_count=150_000, index_interval_words=CHECKPOINT)
    assert calls == [150_000]
    unshifted = one_thread_count_read(path, 150_000, do_time_shifting=False)  # load_events' default
    assert got.tobytes() == unshifted.tobytes()
    assert load_events(path, ev_count=10, ev_start=5, index_interval_words=CHECKPOINT).tobytes() == \
        unshifted[5:15].tobytes() and calls == [150_000]


def test_a_seek_interval_longer_than_the_parts_reads_on_one_thread(tmp_path, monkeypatch):
    """Checkpoints 4096 words apart in a file of about 3000 words that plan_parts would cut in
    two: both parts would start at word 0 (this used to start a pool of 0 threads, a ValueError)."""
    ev = row_run_events(4_000, seed=9)
    path = write_raw(tmp_path / "a.raw", ev, "evt3")
    monkeypatch.setattr(rp, "READ_ALL_THREADS", 2)
    r = RawReader(path, index_interval_words=4096)
    assert 2048 <= r._stream.n_words < 4096
    got = r.read_all()
    assert got.tobytes() == one_thread_count_read(path, 10_000).tobytes()
    assert r.read_first(3_000).tobytes() == got[:3_000].tobytes()
