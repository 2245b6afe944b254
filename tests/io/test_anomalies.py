"""Time-base anomalies (docs/readers.md §4), the seek-index cache, header geometry and files
that are not recordings: each case once made a tool crash, hang, allocate gigabytes or lose data."""

import os
import tracemalloc
import warnings

import numpy as np
import pytest

from evstream.cli import main
from evstream.errors import ArgumentError, FileFormatError, GeometryError
from evstream.io import DatWriter, EventBbox, EventCD, RawReader, load_events, read_raw_header
from evstream.io.summary import summarize
from evstream.preprocessing.hdf5 import write_to_hdf5
from raw_files import row_run_events, write_raw

MAXH = (1 << 28) - 1


def evt2_words_file(tmp_path, words, name="anomaly.raw"):
    """An EVT 2.0 file (320x240 header from the writer) holding exactly ``words``."""
    path = write_raw(tmp_path / name, row_run_events(1), "evt2")
    offset = read_raw_header(path).data_offset
    path.write_bytes(path.read_bytes()[:offset] + np.array(words, dtype="<u4").tobytes())
    return path


def th(v):
    return 0x80000000 | v


def cd(x, lsb=0, p=1):
    return (p << 28) | (lsb << 22) | (x << 11) | 5


def test_info_on_a_time_base_that_steps_backwards(tmp_path, capsys):
    path = evt2_words_file(tmp_path, [th(100), cd(1), cd(2), th(40), cd(3), th(101), cd(4)])
    s = summarize(path, do_time_shifting=False)
    assert s.event_count == 4 and s.backward_steps == 1
    assert (s.first_t, s.last_t, s.min_t, s.max_t) == (6400, 6464, 2560, 6464)
    assert s.duration_us == 6464 - 2560
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "t backwards" in out and "Traceback" not in out


def loop_file(tmp_path, loops=2000):
    """A ~24 KB file whose TIME_HIGH loops 2000 times (2^34 µs each): 2000 events over 3.4e13 µs."""
    words = []
    for k in range(loops):
        words += [th(0), cd(k % 300), th(MAXH)]
    return evt2_words_file(tmp_path, words, "loops.raw")


def test_summary_of_many_time_base_loops_is_bounded(tmp_path):
    path = loop_file(tmp_path)
    assert os.path.getsize(path) < 32_000
    tracemalloc.start()
    s = summarize(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert s.event_count == 2000
    assert s.max_t - s.min_t == 1999 * (1 << 34)
    assert peak < 50 * 1024 * 1024, peak           # was 25.6 GiB (one counter per 10 ms)


def test_precompute_refuses_a_span_beyond_the_row_limit(tmp_path, capsys):
    path = loop_file(tmp_path)
    with pytest.raises(ArgumentError, match=r"loops.raw: the events span .* more than max_rows"):
        write_to_hdf5(path, output_folder=tmp_path / "out", delta_t=50_000)
    assert not list((tmp_path / "out").glob("*.h5"))
    assert main(["precompute", str(path), "-o", str(tmp_path / "cli"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "loops.raw" in err and "max_rows" in err and "Traceback" not in err


def test_row_limit_boundary(tmp_path):
    events = row_run_events(100)
    events["t"] = np.arange(100) * 100          # last event at 9900 µs: rows = 9900 // 1000 + 1
    dat = tmp_path / "short.dat"
    with DatWriter(dat, 240, 320) as w:
        w.write(events)
    assert write_to_hdf5(dat, output_folder=tmp_path / "a", delta_t=1000, max_rows=10).rows == 10
    with pytest.raises(ArgumentError, match="10 rows of 1000 us: more than max_rows=9"):
        write_to_hdf5(dat, output_folder=tmp_path / "b", delta_t=1000, max_rows=9)


# ------------------------------------------------------------------------ seek-index cache
def cached_reader_results(path):
    reader = RawReader(path, cache_index=True)
    count = reader.event_count()
    reader.seek_time(2000)
    return count, reader.load_n_events(100)


@pytest.fixture
def recording(tmp_path):
    events = row_run_events(30_000, seed=2)
    path = write_raw(tmp_path / "rec.raw", events, "evt3")
    return path, cached_reader_results(path)


def test_truncated_index_cache_is_ignored_and_rebuilt(recording):
    path, (count, window) = recording
    index = path.with_name("rec.raw.evindex.npz")
    assert index.is_file()
    index.write_bytes(index.read_bytes()[:100])
    with pytest.warns(UserWarning, match="evindex.npz: corrupt seek-index cache ignored"):
        got_count, got_window = cached_reader_results(path)
    assert got_count == count
    np.testing.assert_array_equal(got_window, window)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached_reader_results(path)[0] == count   # rewritten whole: read without warning


def test_stale_index_cache_is_rebuilt(recording, tmp_path):
    path, _ = recording
    events = row_run_events(20_000, seed=3)
    write_raw(path, events, "evt3")                     # same name, other content
    with pytest.warns(UserWarning, match="stale seek-index cache"):
        count, _ = cached_reader_results(path)
    assert count == len(events)


def test_unwritable_index_cache_only_warns(tmp_path):
    events = row_run_events(5000)
    path = write_raw(tmp_path / "ro.raw", events, "evt2")
    os.mkdir(tmp_path / "ro.raw.evindex.npz")           # an obstacle any user, root too, hits
    with pytest.warns(UserWarning, match="cannot write the seek-index cache"):
        reader = RawReader(path, cache_index=True)
        assert reader.event_count() == len(events)
    np.testing.assert_array_equal(reader.read_all(), RawReader(path).read_all())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write_raw(folder / "a.raw", row_run_events(3000), "evt3")
    folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="cannot write the seek-index cache"):
            assert RawReader(path, cache_index=True).event_count() == 3000
    finally:
        folder.chmod(0o755)


# ------------------------------------------------------------------------ geometry and headers
def test_raw_geometry_beyond_the_largest_sensor_names_the_file(tmp_path):
    path = write_raw(tmp_path / "huge.raw", row_run_events(10), "evt3")
    data = path.read_bytes().replace(b"% geometry 320x240", b"% geometry 100000x100000")
    data = data.replace(b"% format EVT3;height=240;width=320", b"% format EVT3")
    path.write_bytes(data)
    with pytest.raises(GeometryError, match="huge.raw: .*100000.* outside 1..65536"):
        RawReader(path)


@pytest.mark.parametrize("value", ["99999999999999999999", "0", "-3", "tall"])
def test_dat_height_follows_the_same_rule(tmp_path, value):
    path = tmp_path / "bad.dat"
    with DatWriter(path, 240, 320) as w:
        w.write(row_run_events(10))
    path.write_bytes(path.read_bytes().replace(b"% Height 240", f"% Height {value}".encode()))
    with pytest.raises(GeometryError, match="bad.dat: '% Height"):
        load_events(path)


def test_raw_height_zero_is_refused_too(tmp_path):
    path = write_raw(tmp_path / "zero.raw", row_run_events(10), "evt2")
    data = path.read_bytes().replace(b"% geometry 320x240", b"% geometry 320x0")
    path.write_bytes(data)
    with pytest.raises(GeometryError, match="zero.raw"):
        RawReader(path)


# ------------------------------------------------------------------------ not recordings
def test_empty_dat_is_not_a_recording(tmp_path, capsys):
    path = tmp_path / "empty.dat"
    path.write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty.dat: empty file"):
        load_events(path)
    assert main(["info", str(path)]) == 1
    assert main(["precompute", str(path), "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    assert not list((tmp_path / "out").glob("*.h5"))
    assert "empty.dat" in capsys.readouterr().err


def test_info_lists_box_files(tmp_path, capsys):
    boxes = np.zeros(4, dtype=EventBbox)
    boxes["t"] = [50_000, 100_000, 100_000, 250_000]
    boxes["w"] = boxes["h"] = 10
    np.save(tmp_path / "rec_bbox.npy", boxes)
    events = np.zeros(3, dtype=EventCD)
    events["t"] = [1, 2, 3]
    np.save(tmp_path / "ev.npy", events)
    assert main(["info", str(tmp_path / "rec_bbox.npy"), str(tmp_path / "ev.npy")]) == 0
    rows = capsys.readouterr().out.splitlines()
    box_row = next(r for r in rows if r.startswith("rec_bbox.npy"))
    assert "boxes (NPY)" in box_row and "4 boxes" in box_row and "0.200000" in box_row
    ev_row = next(r for r in rows if r.startswith("ev.npy"))
    assert "NPY" in ev_row and "boxes" not in ev_row


def test_damaged_npy_header_is_a_format_error(tmp_path):
    boxes = np.zeros(3, dtype=EventBbox)
    path = tmp_path / "rec_bbox.npy"
    np.save(path, boxes)
    data = bytearray(path.read_bytes())
    data[20:24] = b"(((("                   # inside the header's dict literal
    path.write_bytes(bytes(data))
    from evstream.io import EventNpyReader
    with pytest.raises(FileFormatError, match="rec_bbox.npy: not a readable .npy array"):
        EventNpyReader(path)
    with pytest.raises(FileFormatError, match="rec_bbox.npy"):
        load_events(path)
