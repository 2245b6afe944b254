"""EventsIterator modes, bounds and relative timestamps on a hand-made DAT file."""

import numpy as np
import pytest

from evstream.errors import ArgumentError
from evstream.io import DatWriter, EventCD, EventsIterator

TIMES = [0, 5, 9, 10, 10, 25, 26, 27, 28, 29, 60]


@pytest.fixture
def dat(tmp_path):
    events = np.zeros(len(TIMES), dtype=EventCD)
    events["t"] = TIMES
    events["x"] = np.arange(len(TIMES))
    path = tmp_path / "small.dat"
    with DatWriter(path, height=10, width=20) as w:
        w.write(events)
    return path


def times(slices):
    return [list(s["t"]) for s in slices]


def test_delta_t_yields_empty_windows(dat):
    got = times(EventsIterator(dat, delta_t=10))
    assert got == [[0, 5, 9], [10, 10], [25, 26, 27, 28, 29], [], [], [], [60]]


def test_relative_timestamps_and_start_ts(dat):
    it = EventsIterator(dat, delta_t=10, start_ts=25, relative_timestamps=True)
    got = times(it)
    assert got == [[0, 1, 2, 3, 4], [], [], [5]]
    assert it.get_current_time() == 60


def test_max_duration_cuts_the_last_window(dat):
    assert times(EventsIterator(dat, delta_t=10, max_duration=27)) == [[0, 5, 9], [10, 10], [25, 26]]
    assert times(EventsIterator(dat, mode="n_events", n_events=4, max_duration=27)) == \
        [[0, 5, 9, 10], [10, 25, 26]]


def test_n_events_and_mixed(dat):
    assert times(EventsIterator(dat, mode="n_events", n_events=4)) == \
        [[0, 5, 9, 10], [10, 25, 26, 27], [28, 29, 60]]
    assert times(EventsIterator(dat, mode="mixed", n_events=4, delta_t=10)) == \
        [[0, 5, 9], [10, 10], [25, 26, 27, 28], [29], [], [], [60]]


def test_iterating_twice_gives_the_same_slices(dat):
    it = EventsIterator(dat, delta_t=7)
    assert times(it) == times(it)


@pytest.mark.parametrize("kwargs", [dict(mode="frames"), dict(delta_t=0), dict(start_ts=-1),
                                    dict(mode="n_events", n_events=-1), dict(max_duration=0)])
def test_bad_arguments_name_the_file(dat, kwargs):
    with pytest.raises(ArgumentError, match="small.dat"):
        EventsIterator(dat, **kwargs)


def test_n_events_zero_is_accepted_at_construction_only(dat):
    """OpenEB's RAW test builds EventsIterator(mode="n_events", n_events=0) (docs/readers.md §5)."""
    it = EventsIterator(dat, mode="n_events", n_events=0)
    assert it.get_size() == [10, 20]
    with pytest.raises(ArgumentError, match="small.dat.*n_events >= 1"):
        next(iter(it))
