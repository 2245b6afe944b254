"""RAW files with external triggers, as synchronised rigs write them (issue: such files could not
be opened: the decode loop asked the decoder for events with a full output buffer)."""

import numpy as np
import pytest

from evstream.cli import main
from evstream.errors import EventArrayError, ReaderStateError, UnsupportedFormatError
from evstream.io import DatWriter, EventsIterator, EventExtTrigger, RawReader, load_events
from raw_files import RAW_KINDS, row_run_events, triggers_every, write_raw

N_EVENTS = 20_000


@pytest.fixture(params=list(RAW_KINDS))
def kind(request):
    return request.param


def trigger_file(tmp_path, kind, every=1000, n=N_EVENTS):
    events = row_run_events(n)
    triggers = triggers_every(events, every)
    return write_raw(tmp_path / f"trig_{kind}.raw", events, kind, triggers), events, triggers


def assert_same_triggers(got, want, shift=0):
    assert got.dtype == EventExtTrigger
    np.testing.assert_array_equal(got["t"], want["t"] - shift)
    np.testing.assert_array_equal(got["p"], want["p"])
    np.testing.assert_array_equal(got["id"], want["id"])


def test_reader_returns_events_and_triggers(tmp_path, kind):
    path, events, triggers = trigger_file(tmp_path, kind)
    reader = RawReader(path, do_time_shifting=False)
    assert (reader.width, reader.height) == (320, 240)
    np.testing.assert_array_equal(reader.read_all(), events)
    assert_same_triggers(reader.get_ext_trigger_events(), triggers)
    assert reader.decoder_counters["triggers"] == len(triggers) == 20


@pytest.mark.parametrize("max_events", [64, 1000, 1 << 19])
def test_small_buffers_and_many_triggers(tmp_path, kind, max_events):
    """More triggers than the 4096-slot trigger buffer, read through a 64-event buffer."""
    path, events, triggers = trigger_file(tmp_path, kind, every=3)
    reader = RawReader(path, do_time_shifting=False, max_events=max_events)
    pieces = []
    while not reader.is_done():
        pieces.append(reader.load_n_events(777))
    np.testing.assert_array_equal(np.concatenate(pieces), events)
    assert len(triggers) > 4096
    assert_same_triggers(reader.get_ext_trigger_events(), triggers)


def test_iterator_triggers_time_shifted_like_the_events(tmp_path, kind):
    path, events, triggers = trigger_file(tmp_path, kind)
    it = EventsIterator(path, delta_t=5000)
    with pytest.raises(ReaderStateError, match="trig_.*iteration first"):
        it.get_ext_trigger_events()
    got = np.concatenate(list(it))
    origin = RawReader(path).origin
    np.testing.assert_array_equal(got["t"], events["t"] - origin)
    assert_same_triggers(it.get_ext_trigger_events(), triggers, shift=origin)


def test_iterator_over_dat_has_no_triggers(tmp_path):
    path = tmp_path / "a.dat"
    with DatWriter(path, 240, 320) as w:
        w.write(row_run_events(100))
    it = EventsIterator(path, delta_t=1000)
    list(it)
    with pytest.raises(UnsupportedFormatError, match="a.dat.*no external trigger"):
        it.get_ext_trigger_events()


def test_trigger_before_the_events_of_its_timestamp_and_trailing_triggers(tmp_path, kind):
    events = row_run_events(50)
    tr = np.zeros(3, dtype=EventExtTrigger)
    tr["t"] = [int(events["t"][10]), int(events["t"][-1]), int(events["t"][-1]) + 100_000]
    tr["p"] = [1, 0, 1]
    tr["id"] = [3, 4, 5]
    path = write_raw(tmp_path / "edge.raw", events, kind, tr)
    reader = RawReader(path, do_time_shifting=False)
    np.testing.assert_array_equal(reader.read_all(), events)
    assert_same_triggers(reader.get_ext_trigger_events(), tr)


def test_writer_checks_triggers(tmp_path):
    events = row_run_events(10)
    bad_id = triggers_every(events, 1)
    bad_id["id"][3] = 16
    from evstream.io import RawWriter
    with RawWriter(tmp_path / "a.raw", 240, 320, "evt3") as w:
        with pytest.raises(EventArrayError, match="a.raw.*trigger id must be within 0..15"):
            w.write(events, bad_id)
    bad_order = triggers_every(events, 1)[::-1].copy()
    with RawWriter(tmp_path / "b.raw", 240, 320, "evt2") as w:
        with pytest.raises(EventArrayError, match="trigger timestamps decrease"):
            w.write(events, bad_order)
    bad_p = triggers_every(events, 1)
    bad_p["p"][0] = 2
    with RawWriter(tmp_path / "c.raw", 240, 320, "evt21") as w:
        with pytest.raises(EventArrayError, match="trigger polarity"):
            w.write(events, bad_p)


def test_info_and_precompute_open_trigger_files(tmp_path, kind, capsys):
    path, events, triggers = trigger_file(tmp_path, kind)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("trig_"))
    assert f"{N_EVENTS:,}" in row and row.split()[-1] == "20"
    assert main(["precompute", str(path), "-o", str(tmp_path / "out"), "--delta-t", "1000",
                 "--no-progress"]) == 0
    from evstream.data.hdf5_iterator import HDF5Iterator  # noqa: F401  (the layer-3 reader)
    from evstream.preprocessing.hdf5 import read_tensor_attrs
    attrs = read_tensor_attrs(tmp_path / "out" / f"trig_{kind}.h5")
    shifted_last = int(events["t"][-1]) - RawReader(path).origin
    assert attrs.rows == shifted_last // 1000 + 1


def test_load_events_returns_the_events(tmp_path, kind):
    path, events, _ = trigger_file(tmp_path, kind)
    np.testing.assert_array_equal(load_events(path), events)


def test_trigger_padding_bytes_are_zero(tmp_path):
    # EventExtTrigger has 12 padding bytes per record; numpy's structured copy and concatenate
    # left them uninitialised, so two reads of one file gave different bytes
    path, _, triggers = trigger_file(tmp_path, "evt3", every=50, n=200_000)
    reader = RawReader(path, max_events=1 << 12)        # triggers kept in many chunks
    reader.read_all()
    got = reader.get_ext_trigger_events()
    assert len(got) == len(triggers)
    records = got.view(np.uint8).reshape(len(got), EventExtTrigger.itemsize)
    assert not records[:, 2:8].any() and not records[:, 18:24].any()
