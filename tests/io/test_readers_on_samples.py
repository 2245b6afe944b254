"""The real recordings in shared/samples through every public read path: the oracle values
(shared/samples/README.md), time shifting, windowed streaming, seeks and the index."""

import numpy as np
import pytest
from sample_oracle import ORACLE, SHIFTED_SPAN, sample

from evstream.io import EventsIterator, RawReader, load_events, open_reader


def summary(ev):
    first = tuple(int(ev[0][k]) for k in "txyp")
    last = tuple(int(ev[-1][k]) for k in "txyp")
    return (len(ev), first, last, int(ev["t"].sum()), int(ev["x"].astype(np.int64).sum()),
            int(ev["y"].astype(np.int64).sum()), int((ev["p"] == 1).sum()),
            len(np.unique(ev["t"])))


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_load_events_matches_oracle(name):
    ev = load_events(sample(name))
    assert summary(ev) == ORACLE[name]
    assert np.all(np.diff(ev["t"]) >= 0)


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_small_buffer_streaming_equals_whole_file(name):
    whole = load_events(sample(name))
    kwargs = {"buffer_events": 1000} if name.endswith(".dat") else {"max_events": 1000}
    reader = open_reader(sample(name), do_time_shifting=False, **kwargs)
    pieces = []
    while not reader.is_done():
        pieces.append(reader.load_n_events(777))
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


@pytest.mark.parametrize("name", sorted(SHIFTED_SPAN))
def test_time_shifting_matches_openeb_rule(name):
    reader = RawReader(sample(name))
    ev = reader.read_all()
    assert (int(ev["t"][0]), int(ev["t"][-1])) == SHIFTED_SPAN[name]
    raw = load_events(sample(name))
    np.testing.assert_array_equal(ev["t"] - ev["t"][0], raw["t"] - raw["t"][0])
    assert reader.event_count() == ORACLE[name][0]


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_delta_t_windows_partition_the_recording(name):
    whole = open_reader(sample(name)).read_all()
    windows = list(EventsIterator(sample(name), delta_t=1000))
    assert sum(len(w) for w in windows) == len(whole)
    np.testing.assert_array_equal(np.concatenate(windows), whole)
    for k, w in enumerate(windows):
        assert np.all((w["t"] >= k * 1000) & (w["t"] < (k + 1) * 1000))
    assert len(windows) == whole["t"][-1] // 1000 + 1


def test_geometry_and_coordinates_inside_sensor():
    for name, size in (("expelliarmus_evt3_sample.raw", (720, 1280)),
                       ("expelliarmus_evt2_sample.raw", (480, 640)),
                       ("faery_evt2.raw", (480, 640))):
        reader = RawReader(sample(name))
        assert reader.get_size() == size
        ev = reader.read_all()
        assert ev["x"].max() < size[1] and ev["y"].max() < size[0]
        assert reader.out_of_bounds_count == 0
    assert open_reader(sample("tonic_sample_ncars.dat")).get_size() is None


def test_seek_time_on_sample_matches_search():
    name = "faery_evt2.raw"
    whole = RawReader(sample(name)).read_all()
    reader = RawReader(sample(name), max_events=4096)
    for t in (95871, 50000, 1, 0, 70123, 95872):
        reader.seek_time(t)
        first = int(np.searchsorted(whole["t"], t))
        assert reader.current_event_index() == first
        if first < len(whole):
            np.testing.assert_array_equal(reader.load_n_events(100), whole[first:first + 100])
        else:
            assert reader.is_done()


def test_seek_index_cached_only_on_request(tmp_path):
    import shutil
    path = tmp_path / "rec.raw"
    shutil.copy(sample("expelliarmus_evt2_sample.raw"), path)
    reader = RawReader(path)
    reader.event_count()
    assert list(tmp_path.iterdir()) == [path]
    reader = RawReader(path, cache_index=True)
    assert reader.event_count() == ORACLE["expelliarmus_evt2_sample.raw"][0]
    index_file = tmp_path / "rec.raw.evindex.npz"
    assert index_file.is_file()
    again = RawReader(path, cache_index=True)
    assert again._stream.index.complete  # loaded, not rebuilt
    assert again.event_count() == ORACLE["expelliarmus_evt2_sample.raw"][0]
    again.seek_time(25000)
    whole = RawReader(path).read_all()
    np.testing.assert_array_equal(again.load_delta_t(1000),
                                  whole[(whole["t"] >= 25000) & (whole["t"] < 26000)])


@pytest.mark.parametrize("name", ["expelliarmus_evt3_sample.raw", "faery_evt2.raw"])
def test_seeks_with_dense_checkpoints(name):
    """Seeks restart from a checkpoint in the middle of the file, backwards and forwards."""
    whole = RawReader(sample(name)).read_all()
    reader = RawReader(sample(name), max_events=2048, index_interval_words=3000)
    rng = np.random.default_rng(0)
    targets = rng.integers(0, int(whole["t"][-1]) + 10, 25)
    for t in targets:
        reader.seek_time(int(t))
        first = int(np.searchsorted(whole["t"], t))
        assert reader.current_event_index() == first
        np.testing.assert_array_equal(reader.load_n_events(500), whole[first:first + 500])
    for n in rng.integers(0, len(whole) + 5, 25):
        reader.seek_event(int(n))
        assert reader.current_event_index() == min(n, len(whole))
        expected_time = int(whole["t"][min(n, len(whole)) - 1]) if n else 0
        assert reader.current_time == expected_time
        np.testing.assert_array_equal(reader.load_n_events(300), whole[n:n + 300])
    assert len(reader._stream.index.states) > 10


def test_triggers_through_the_reader_are_time_shifted(tmp_path):
    """EVT 2.0 words by hand: TIME_HIGH, CD_ON, EXT_TRIGGER (id 3, rising), CD_OFF."""
    th = (0x8 << 28) | 1000                          # time base 1000 << 6 = 64000 µs
    cd_on = (0x1 << 28) | (5 << 22) | (10 << 11) | 20
    trigger = (0xA << 28) | (7 << 22) | (3 << 8) | 1
    cd_off = (0x0 << 28) | (9 << 22) | (11 << 11) | 21
    path = tmp_path / "trig.raw"
    path.write_bytes(b"% evt 2.0\n% geometry 640x480\n% end\n"
                     + np.array([th, cd_on, trigger, cd_off], dtype="<u4").tobytes())
    reader = RawReader(path)
    events = reader.read_all()
    assert [tuple(int(e[k]) for k in "xypt") for e in events] == [(10, 20, 1, 5), (11, 21, 0, 9)]
    triggers = reader.get_ext_trigger_events()
    assert [(int(t["p"]), int(t["t"]), int(t["id"])) for t in triggers] == [(1, 7, 3)]
    unshifted = RawReader(path, do_time_shifting=False)
    unshifted.read_all()
    assert int(unshifted.get_ext_trigger_events()["t"][0]) == 64007
    reader.clear_ext_trigger_events()
    assert len(reader.get_ext_trigger_events()) == 0


def test_streaming_memory_is_bounded_by_the_window(tmp_path):
    """The decode buffer grows to the largest window, never with the length of the file."""
    from evstream.io import EventCD, RawWriter
    n = 200_000
    events = np.zeros(n, dtype=EventCD)
    events["t"] = np.arange(n) // 10                    # 10 events per µs
    events["x"] = np.arange(n) % 640
    path = tmp_path / "long.raw"
    with RawWriter(path, 480, 640, format="evt2") as w:
        w.write(events)
    reader = RawReader(path, do_time_shifting=False, max_events=1024)
    peak = 0
    while not reader.is_done():
        assert len(reader.load_delta_t(100)) <= 1000
        peak = max(peak, len(reader._buf))
    assert reader.current_event_index() == n
    assert peak <= 4096
