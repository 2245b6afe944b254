"""Property tests on whole RAW files with external triggers, in EVT 2.0, 3.0 and both EVT 2.1
layouts: exact round trips through every read path, and mutated files that give events inside
the sensor or an EvstreamError naming the file."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evstream.errors import EvstreamError
from evstream.io import EventCD, EventExtTrigger, EventsIterator, RawReader, open_reader
from raw_files import RAW_KINDS, write_raw

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@st.composite
def recordings(draw):
    """(events, triggers): sorted, on a 64 x 32 sensor, with gaps up to beyond 2^34 µs."""
    n = draw(st.integers(0, 400))
    m = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gaps = rng.choice([0, 0, 1, 3, 70, 5000, 1 << 24, (1 << 34) + 7], size=n + m)
    t = np.cumsum(gaps)
    kinds = rng.permutation(np.r_[np.zeros(n, bool), np.ones(m, bool)])
    events = np.zeros(n, dtype=EventCD)
    events["t"] = t[~kinds]
    events["x"] = rng.integers(0, 64, n)
    events["y"] = rng.integers(0, 32, n)
    events["p"] = rng.integers(0, 2, n)
    triggers = np.zeros(m, dtype=EventExtTrigger)
    triggers["t"] = t[kinds]
    triggers["p"] = rng.integers(0, 2, m)
    triggers["id"] = rng.integers(0, 16, m)
    return events, triggers


@SETTINGS
@given(rec=recordings(), kind=st.sampled_from(list(RAW_KINDS)), data=st.data())
def test_round_trip_through_every_read_path(tmp_path, rec, kind, data):
    events, triggers = rec
    path = write_raw(tmp_path / f"f_{kind}.raw", events, kind, triggers, height=32, width=64)
    reader = RawReader(path, do_time_shifting=False,
                       max_events=data.draw(st.sampled_from([64, 100, 4096])))
    pieces = []
    while not reader.is_done():
        if data.draw(st.booleans()):
            pieces.append(reader.load_n_events(data.draw(st.integers(1, 90))))
        else:
            pieces.append(reader.load_delta_t(data.draw(st.sampled_from([1, 50, 1 << 20, 1 << 35]))))
    got = np.concatenate(pieces) if pieces else np.zeros(0, EventCD)
    np.testing.assert_array_equal(got, events)
    tr = reader.get_ext_trigger_events()
    # triggers after the last event are decoded once the reader reaches the end of the file
    np.testing.assert_array_equal(tr["t"], triggers["t"][:len(tr)])
    np.testing.assert_array_equal(tr["id"], triggers["id"][:len(tr)])
    np.testing.assert_array_equal(tr["p"], triggers["p"][:len(tr)])
    assert len(tr) == len(triggers) or not len(events)
    whole = RawReader(path, do_time_shifting=False)
    np.testing.assert_array_equal(whole.read_all(), events)
    np.testing.assert_array_equal(whole.get_ext_trigger_events()["t"], triggers["t"])
    it = EventsIterator(path, mode="n_events", n_events=37, do_time_shifting=False)
    sliced = list(it)
    np.testing.assert_array_equal(np.concatenate(sliced) if sliced else np.zeros(0, EventCD),
                                  events)
    if sliced:
        np.testing.assert_array_equal(it.get_ext_trigger_events()["t"], triggers["t"])


@SETTINGS
@given(rec=recordings(), kind=st.sampled_from(list(RAW_KINDS)), data=st.data())
def test_mutated_files_give_sane_events_or_an_error_naming_the_file(tmp_path, rec, kind, data):
    events, triggers = rec
    path = write_raw(tmp_path / f"m_{kind}.raw", events, kind, triggers, height=32, width=64)
    raw = bytearray(path.read_bytes())
    offset = raw.index(b"% end\n") + 6
    for _ in range(data.draw(st.integers(1, 12))):
        if data.draw(st.integers(0, 9)) == 0:             # now and then, the header
            i = data.draw(st.integers(0, offset - 1))
        elif len(raw) > offset:
            i = data.draw(st.integers(offset, len(raw) - 1))
        else:
            continue
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del raw[data.draw(st.integers(offset, len(raw))):]
    path.write_bytes(bytes(raw))
    try:
        reader = open_reader(path)
        got = reader.read_all()
        windows = list(EventsIterator(path, mode="n_events", n_events=50))
    except EvstreamError as exc:
        assert str(path) in str(exc)
        return
    h, w = reader.get_size()
    if len(got):
        assert int(got["x"].max()) < w and int(got["y"].max()) < h
        assert set(np.unique(got["p"])) <= {0, 1}
    assert sum(len(x) for x in windows) == len(got)
