"""Bad files and arguments get a clear evstream error naming the file and the problem."""

import shutil

import numpy as np
import pytest
from sample_oracle import ORACLE, sample

from evstream.errors import (EvstreamError, FileFormatError, GeometryError, MissingFileError,
                             UnsupportedFormatError)
from evstream.io import (DatWriter, EventCD, EventsIterator, RawReader, RawWriter, load_events,
                         open_reader)


def copy_sample(tmp_path, name):
    path = tmp_path / name
    shutil.copy(sample(name), path)
    return path


@pytest.mark.parametrize("suffix", [".raw", ".dat", ".npy"])
def test_missing_file(tmp_path, suffix):
    path = tmp_path / f"nothing{suffix}"
    with pytest.raises(MissingFileError, match="nothing"):
        open_reader(path)


@pytest.mark.parametrize("name,word", [("expelliarmus_evt3_sample.raw", 2),
                                       ("expelliarmus_evt2_sample.raw", 4)])
def test_truncated_raw_raises_unless_allowed(tmp_path, name, word):
    path = copy_sample(tmp_path, name)
    with open(path, "ab") as f:
        f.write(b"\x01")  # a partial last word
    with pytest.raises(FileFormatError, match=rf"{path.name}.*truncated.*{word}-byte"):
        RawReader(path)
    with pytest.warns(UserWarning, match="truncated"):
        reader = RawReader(path, allow_truncated=True, do_time_shifting=False)
    assert len(reader.read_all()) == ORACLE[name][0]


def test_raw_header_without_data(tmp_path):
    path = tmp_path / "empty.raw"
    path.write_bytes(b"% evt 3.0\n% geometry 640x480\n% end\n")
    reader = RawReader(path)
    assert reader.is_done()
    assert len(reader.load_delta_t(1000)) == 0
    assert reader.event_count() == 0
    assert len(load_events(path)) == 0


def test_garbage_raw_is_rejected(tmp_path):
    path = tmp_path / "garbage.raw"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 10000, dtype=np.uint8).tobytes())
    with pytest.raises(FileFormatError, match="garbage.raw.*not a RAW"):
        RawReader(path)


def test_unknown_evt_version(tmp_path):
    path = tmp_path / "future.raw"
    path.write_bytes(b"% evt 4.0\n% geometry 640x480\n% end\n" + b"\x00" * 64)
    with pytest.raises(UnsupportedFormatError, match="future.raw.*4.0"):
        RawReader(path)


def test_raw_without_geometry_needs_an_override(tmp_path):
    path = tmp_path / "nogeo.raw"
    path.write_bytes(b"% evt 2.0\n% end\n" + b"\x00" * 64)
    with pytest.raises(GeometryError, match="nogeo.raw.*height"):
        RawReader(path)
    assert RawReader(path, height=100, width=200).get_size() == (100, 200)


def test_raw_events_outside_geometry_are_reported(tmp_path):
    events = np.zeros(4, dtype=EventCD)
    events["t"] = [10, 20, 30, 40]
    events["x"] = [5, 600, 7, 639]
    path = tmp_path / "wide.raw"
    with RawWriter(path, height=480, width=640, format="evt2") as w:
        w.write(events)
    # the file claims 640x480; a user override cannot contradict the header ...
    with pytest.raises(GeometryError, match="wide.raw"):
        RawReader(path, height=480, width=320)
    # ... but a header saying 320 wide with events beyond it is reported
    data = path.read_bytes().replace(b"640x480", b"320x480").replace(b"width=640", b"width=320")
    narrow = tmp_path / "narrow.raw"
    narrow.write_bytes(data)
    with pytest.warns(UserWarning, match="narrow.raw: dropping events outside the 320x480"):
        reader = RawReader(narrow, do_time_shifting=False)
        kept = reader.read_all()
    np.testing.assert_array_equal(kept["x"], [5, 7])
    assert reader.out_of_bounds_count == 2
    with pytest.raises(GeometryError, match="narrow.raw.*2 event"):
        RawReader(narrow, out_of_bounds="raise").read_all()
    assert len(RawReader(narrow, out_of_bounds="keep").read_all()) == 4


def test_dat_size_not_multiple_of_record(tmp_path):
    path = copy_sample(tmp_path, "tonic_sample_ncars.dat")
    with open(path, "ab") as f:
        f.write(b"\x00\x01\x02")
    with pytest.raises(FileFormatError, match=r"ncars.dat.*3 trailing bytes"):
        open_reader(path)


def test_dat_header_cut_before_type_bytes(tmp_path):
    path = tmp_path / "cut.dat"
    path.write_bytes(b"% Data file containing CD events\n% Height 10\n")
    with pytest.raises(FileFormatError, match="cut.dat"):
        open_reader(path)


def test_dat_unsupported_event_type(tmp_path):
    path = tmp_path / "trig.dat"
    path.write_bytes(b"% Version 2\n" + bytes([0x0E, 8]) + b"\x00" * 16)
    with pytest.raises(UnsupportedFormatError, match="trig.dat.*0x0E"):
        open_reader(path)


@pytest.mark.parametrize("headerless", [False, True])
def test_garbage_dat_is_rejected(tmp_path, headerless):
    rng = np.random.default_rng(1)
    garbage = rng.integers(0, 256, 8 * 500, dtype=np.uint8).tobytes()
    path = tmp_path / "garbage.dat"
    if headerless:
        path.write_bytes(garbage)
    else:
        raw = sample("tonic_sample_ncars.dat").read_bytes()
        path.write_bytes(raw[:93] + garbage)
    with pytest.raises(FileFormatError, match="garbage.dat.*backwards"):
        load_events(path)


def test_dat_events_outside_header_geometry(tmp_path):
    path = tmp_path / "small.dat"
    events = np.zeros(3, dtype=EventCD)
    events["t"], events["x"] = [1, 2, 3], [1, 2, 3]
    with DatWriter(path, height=10, width=20) as w:
        w.write(events)
    data = bytearray(path.read_bytes())
    data = data.replace(b"% Width 20", b"% Width 02")  # now 2 wide
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="small.dat: dropping events outside the 2x10"):
        assert list(load_events(path)["x"]) == [1]


def test_writers_reject_bad_events(tmp_path):
    events = np.zeros(2, dtype=EventCD)
    events["t"] = [5, 3]
    with DatWriter(tmp_path / "a.dat", 10, 10) as w, pytest.raises(EvstreamError, match="a.dat.*chronological"):
        w.write(events)
    events["t"] = [3, 5]
    events["x"] = [1, 10]
    with DatWriter(tmp_path / "b.dat", 10, 10) as w, pytest.raises(EvstreamError, match="b.dat.*geometry"):
        w.write(events)
    with DatWriter(tmp_path / "c.dat", 10, 10) as w, pytest.raises(EvstreamError, match="EventCD"):
        w.write(np.zeros(3, dtype=[("t", "<i8")]))


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HEADERS = [b"% evt 2.0\n% geometry 640x480\n% end\n", b"% evt 2.1\n% geometry 640x480\n% end\n",
           b"% evt 3.0\n% format EVT3;height=480;width=640\n", b"% Date x\n% evt 3.0\n",
           b"% Height 480\n% Width 640\n\x00\x08", b""]


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=3000),
       suffix=st.sampled_from([".raw", ".dat"]))
def test_random_files_give_events_inside_the_sensor_or_a_documented_error(tmp_path, header, body,
                                                                           suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(header + body)
    try:
        reader = open_reader(path, height=480, width=640) if suffix == ".raw" else open_reader(path)
        events = reader.read_all()
        # n_events slices: random TIME_HIGH words can jump hours ahead (millions of empty windows)
        windows = list(EventsIterator(path, mode="n_events", n_events=97,
                                      **({"height": 480, "width": 640} if suffix == ".raw" else {})))
    except EvstreamError as exc:
        assert str(path) in str(exc)
        return
    size = reader.get_size()
    if size is not None and len(events):
        assert events["x"].max() < size[-1] and events["y"].max() < size[0]
    assert sum(len(w) for w in windows) == len(events)
