"""OpenEB's reader and iterator assertions (docs/readers.md §5) replayed on files made by
the project's writers: RAW ≡ its DAT conversion through EventsIterator in every mode (slices and
``get_current_time()``), the API ported code calls, and the readers' context manager."""

import numpy as np
import pytest

from evstream.errors import ArgumentError, FileFormatError
from evstream.io import (DatWriter, EventNpyReader, EventsIterator, RawReader, load_events,
                         open_reader)
from raw_files import RAW_KINDS, row_run_events, triggers_every, write_raw

ITERATIONS = [dict(mode="delta_t", delta_t=1000), dict(mode="delta_t", delta_t=10**9),
              dict(mode="n_events", n_events=777), dict(mode="mixed", n_events=300, delta_t=700),
              dict(mode="mixed", n_events=5000, delta_t=250, max_duration=9000),
              dict(mode="delta_t", delta_t=333.0)]


def gapped_events():
    """Row runs with two large time gaps and repeated timestamps (OpenEB's big-gap case)."""
    ev = row_run_events(12_000, seed=9)
    ev["t"][4000:] += 500_000
    ev["t"][8000:] += 3_000_000
    return ev


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """For every RAW kind: (raw path, dat path) holding the same events (RAW -> DAT)."""
    root = tmp_path_factory.mktemp("pairs")
    events = gapped_events()
    out = {}
    for kind in RAW_KINDS:
        raw = write_raw(root / f"{kind}.raw", events, kind, triggers_every(events, 1000))
        dat = root / f"{kind}.dat"
        with DatWriter(dat, 240, 320) as w:
            w.write(RawReader(raw, do_time_shifting=False).read_all())
        out[kind] = (raw, dat)
    return out


def slices(path, **kwargs):
    it = EventsIterator(path, **kwargs)
    got = []
    for events in it:
        got.append((events.copy(), it.get_current_time()))
    return got


@pytest.mark.parametrize("kind", list(RAW_KINDS))
@pytest.mark.parametrize("kwargs", ITERATIONS)
def test_raw_iterates_as_its_dat_conversion(pair, kind, kwargs):
    raw, dat = pair[kind]
    a = slices(raw, do_time_shifting=False, **kwargs)
    b = slices(dat, **kwargs)
    assert len(a) == len(b)
    for (ea, ta), (eb, tb) in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
        assert ta == tb


@pytest.mark.parametrize("kind", list(RAW_KINDS))
def test_time_shifting_off_and_two_runs_identical(pair, kind):
    raw, _ = pair[kind]
    it = EventsIterator(raw, delta_t=5000, do_time_shifting=False)
    first, second = [e.copy() for e in it], [e.copy() for e in it]
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert int(first[0]["t"][0]) == int(gapped_events()["t"][0])


def test_width_and_height_attributes(pair):
    reader = RawReader(pair["evt3"][0])
    assert (reader.width, reader.height) == (320, 240)
    assert reader.get_size() == (240, 320)


@pytest.mark.parametrize("fmt", ["dat", "npy", "evt2"])
def test_load_events_count_and_start(tmp_path, pair, fmt):
    events = gapped_events()
    path = {"dat": pair["evt2"][1], "evt2": pair["evt2"][0]}.get(fmt)
    if fmt == "npy":
        path = tmp_path / "ev.npy"
        np.save(path, events)
    np.testing.assert_array_equal(load_events(path, ev_count=10, ev_start=5), events[5:15])
    np.testing.assert_array_equal(load_events(path, ev_count=-1, ev_start=11_990), events[11_990:])
    np.testing.assert_array_equal(load_events(path, 3), events[:3])
    assert len(load_events(path, ev_count=5, ev_start=20_000)) == 0
    assert len(load_events(path, ev_count=0, ev_start=3)) == 0
    with pytest.raises(ArgumentError, match="ev_count >= -1"):
        load_events(path, ev_count=-2)


def test_readers_close_and_are_context_managers(pair, tmp_path):
    raw, dat = pair["evt3"]
    np.save(tmp_path / "e.npy", gapped_events()[:10])
    for path in (raw, dat, tmp_path / "e.npy"):
        with open_reader(path) as reader:
            assert len(reader.load_n_events(5)) == 5
            text = repr(reader)
            assert type(reader).__name__ in text and str(path) in text and "next event 5" in text
        reader.close()                                # idempotent


def test_box_files_are_refused_by_the_event_readers(tmp_path):
    from evstream.io import EventBbox
    boxes = np.zeros(3, dtype=EventBbox)
    boxes["t"] = [1, 2, 3]
    path = tmp_path / "rec_bbox.npy"
    np.save(path, boxes)
    for call in (lambda: load_events(path), lambda: open_reader(path), lambda: EventsIterator(path)):
        with pytest.raises(FileFormatError, match="rec_bbox.npy: .*bounding boxes"):
            call()
    assert EventNpyReader(path).read_all().dtype == EventBbox      # the box reader still reads it
