"""Complete RAW seek indexes kept in memory (``evstream.io.raw.COMPLETE_INDEXES``): a reader
opened again on an unchanged file, here or in a forked process, does not decode the file to
count its events; a changed file, or other settings, get their own index."""

import multiprocessing
import os

import numpy as np

import evstream.io.raw as raw
from evstream.io import RawReader
from raw_files import replace_header_lines, row_run_events, write_raw


def test_second_reader_starts_with_the_whole_index(tmp_path, decoded_words):
    events = row_run_events(100_000, seed=5)
    path = write_raw(tmp_path / "a.raw", events, "evt3")
    first = RawReader(path, index_interval_words=2000)
    assert first.event_count() == len(events)
    words = first._stream.n_words
    assert decoded_words[0] >= words
    decoded_words[0] = 0
    again = RawReader(path, index_interval_words=2000)
    assert again._stream.index is first._stream.index
    assert again.event_count() == len(events)
    assert again.duration_s == first.duration_s
    assert decoded_words[0] < words // 10         # only the start, for the time origin
    decoded_words[0] = 0
    assert RawReader(path, index_interval_words=3000).event_count() == len(events)
    assert decoded_words[0] >= words              # another interval: its own index


def test_the_index_serves_seeks_of_the_next_reader(tmp_path):
    events = row_run_events(20_000, seed=6)
    path = write_raw(tmp_path / "a.raw", events, "evt2")
    RawReader(path, index_interval_words=1000).event_count()
    reader = RawReader(path, index_interval_words=1000)
    assert reader._stream.index.complete                             # the first reader's
    whole = RawReader(path, index_interval_words=999).read_all()     # its own index
    for t in (int(whole["t"][15_000]), int(whole["t"][3]), int(whole["t"][9_999])):
        reader.seek_time(t)
        k = int(np.searchsorted(whole["t"], t))
        np.testing.assert_array_equal(reader.load_n_events(500), whole[k:k + 500])


def test_a_rewritten_file_is_decoded_again(tmp_path):
    """Same path, same size and a modification time set back to the first file's (what a
    rewrite within one tick of a coarse file clock looks like): other events are read."""
    path = tmp_path / "a.raw"
    write_raw(path, row_run_events(20_000, seed=1), "evt3")
    assert RawReader(path).event_count() == 20_000
    stat = os.stat(path)
    data = bytearray(path.read_bytes())
    header_end = data.index(b"% end\n") + len(b"% end\n")
    data[-2:] = b"\x99\x99"                       # the last word becomes padding: one event less
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size and header_end < len(data)
    assert RawReader(path).event_count() == len(RawReader(path, max_events=64).read_all())
    assert RawReader(path).event_count() < 20_000


def test_kept_and_dropped_events_get_their_own_index(tmp_path):
    """out_of_bounds="keep" counts the events outside the geometry, "warn" does not."""
    events = row_run_events(5_000, width=512, seed=2)
    path = write_raw(tmp_path / "a.raw", events, "evt3", width=512)
    replace_header_lines(path, drop=("geometry",), format_line="% format EVT3")
    outside = int(np.sum(events["x"] >= 320))
    assert outside > 0
    kept = RawReader(path, width=320, height=240, out_of_bounds="keep").event_count()
    assert kept == len(events)
    dropped = RawReader(path, width=320, height=240, out_of_bounds="warn")
    assert dropped.event_count() == kept - outside


def test_least_recently_used_indexes_go_first():
    kept = raw.CompleteIndexes(max_checkpoints=5)

    def index(checkpoints):
        i = raw.RawIndex()
        i.states = [np.zeros(3, np.int64)] * checkpoints
        i.complete = True
        return i

    a, b, c = index(2), index(2), index(2)
    kept.add(("a", b"", 0), a)
    kept.add(("b", b"", 0), b)
    assert kept.get(("a", b"", 0)) is a                 # a is now the most recent
    kept.add(("c", b"", 0), c)                          # 6 checkpoints: b goes
    assert kept.get(("b", b"", 0)) is None
    assert kept.get(("a", b"", 0)) is a and kept.get(("c", b"", 0)) is c
    kept.add(("d", b"", 0), index(6))                   # larger than the whole budget: not kept
    assert kept.get(("d", b"", 0)) is None and kept.get(("c", b"", 0)) is c
    incomplete = index(1)
    incomplete.complete = False
    kept.add(("e", b"", 0), incomplete)
    assert kept.get(("e", b"", 0)) is None


def _child_index_is_complete(path, queue):
    reader = RawReader(path)
    queue.put((reader._stream.index.complete, reader.event_count()))


def test_a_forked_process_inherits_the_index(tmp_path):
    events = row_run_events(10_000, seed=3)
    path = write_raw(tmp_path / "a.raw", events, "evt3")
    RawReader(path).event_count()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_index_is_complete, args=(str(path), queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(60)
    assert got == (True, len(events))


def test_clear_forgets_every_index(tmp_path, decoded_words):
    path = write_raw(tmp_path / "a.raw", row_run_events(50_000, seed=4), "evt2")
    first = RawReader(path)
    first.event_count()
    raw.COMPLETE_INDEXES.clear()
    decoded_words[0] = 0
    again = RawReader(path)
    assert not again._stream.index.complete
    assert again.event_count() == 50_000 and decoded_words[0] >= again._stream.n_words
