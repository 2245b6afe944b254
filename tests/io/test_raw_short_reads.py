"""A seek followed by a short read (random access: samplers, viewers) decodes and reads from the
file little more than it returns; sequential reading still reaches full-buffer decodes; long
count reads are decoded straight into their arrays, and a seek keeps the size of the last long
window (no events copied from array to array for either)."""

import numpy as np
import pytest

import evstream.io.raw_stream as raw_stream
import evstream.io.reader as reader_module
from evstream.io import RawReader
from evstream.utils.recycled import RecycledArrays
from raw_files import row_run_events, write_raw

INTERVAL = 20_000          # words between two seek checkpoints


class _CountingFile:
    """A file object that adds the bytes it reads to ``total[0]``."""

    def __init__(self, file, total):
        self._file, self._total = file, total

    def readinto(self, buffer):
        got = self._file.readinto(buffer)
        self._total[0] += got
        return got

    def __getattr__(self, name):
        return getattr(self._file, name)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    events = row_run_events(600_000, seed=11)
    path = write_raw(tmp_path_factory.mktemp("short") / "a.raw", events, "evt3")
    whole = RawReader(path, index_interval_words=INTERVAL).read_all()
    return path, whole


def _reader(path):
    reader = RawReader(path, index_interval_words=INTERVAL)
    assert reader.event_count() > 0          # the complete index: seeks start at a checkpoint
    return reader


@pytest.mark.parametrize("fraction", [0.1, 0.35, 0.6])
def test_seek_and_short_read_decodes_a_small_part_of_the_file(recording, decoded_words,
                                                             fraction):
    path, whole = recording
    reader = _reader(path)
    n_words = reader._stream.n_words
    k = int(fraction * len(whole))
    t = int(whole["t"][k])
    decoded_words[0] = 0
    reader.seek_time(t)
    got = reader.load_n_events(1000)
    first = int(np.searchsorted(whole["t"], t))
    np.testing.assert_array_equal(got, whole[first:first + 1000])
    # one checkpoint interval to reach the target, then about what the read returns (before:
    # a whole 512 K-event buffer, most of what follows in this file)
    assert decoded_words[0] < n_words // 10


def test_seek_and_short_read_reads_a_small_part_of_the_file(recording):
    path, whole = recording
    reader = _reader(path)
    word_size = reader._stream.word_size
    read = [0]
    reader._stream._file = _CountingFile(reader._stream._file, read)
    t = int(whole["t"][len(whole) // 5])
    reader.seek_time(t)
    reader.load_n_events(1000)
    # the file is read from the checkpoint one interval at a time, doubling (before: a whole
    # 2^20-word block, the rest of this file)
    assert 0 < read[0] <= 3 * INTERVAL * word_size


def test_sequential_reads_after_a_seek_grow_to_the_full_buffer(recording, monkeypatch):
    path, whole = recording
    reader = _reader(path)
    rooms = []                                   # the room of each decode call
    original = raw_stream.RawDecodeStream.decode_into

    def recording_rooms(stream, out, *args, **kwargs):
        rooms.append(len(out))
        return original(stream, out, *args, **kwargs)
    monkeypatch.setattr(raw_stream.RawDecodeStream, "decode_into", recording_rooms)
    reader.seek_event(1234)
    chunks = []
    while not reader.is_done():
        chunks.append(reader.load_n_events(500))
    np.testing.assert_array_equal(np.concatenate(chunks), whole[1234:])
    assert rooms[0] <= max(rooms) // 32                 # small after the seek,
    assert max(rooms) >= reader._buffer_events // 2     # then up to the buffer's room
    assert len(rooms) < 40                              # in few calls (doubling)


@pytest.fixture
def copied_events(monkeypatch):
    """The events readers copy from array to array from now on (a list of one running total):
    ``assign_records`` (buffer compaction and growth, read-ahead put back) and
    ``copy_records`` (results taken from the buffer)."""
    total = [0]
    for name in ("assign_records", "copy_records"):
        original = getattr(reader_module, name)

        def counting(*args, _original=original):
            total[0] += len(args[-1])
            return _original(*args)
        monkeypatch.setattr(reader_module, name, counting)
    return total


def test_long_count_reads_are_decoded_into_their_arrays(recording, copied_events):
    path, whole = recording
    reader = _reader(path)
    reader.seek_event(5000)
    copied_events[0] = 0
    chunks = [reader.load_n_events(65_536) for _ in range(6)]
    np.testing.assert_array_equal(np.concatenate(chunks), whole[5000:5000 + 6 * 65_536])
    # before: each read decoded a whole buffer ahead (512 K events), put the rest back and
    # copied the next reads out of it, some 6 x 65 536 events copied
    assert copied_events[0] < 6 * 65_536 // 20


def test_a_seek_keeps_the_size_of_the_last_long_window(recording, copied_events):
    path, whole = recording
    reader = RawReader(path, index_interval_words=INTERVAL, max_events=4096)
    reader.event_count()
    t0 = int(whole["t"][100_000])
    span = int(whole["t"][300_000]) - t0            # some 200 000 events, 49 buffers
    reader.seek_time(t0)
    first = reader.load_delta_t(span)
    reader.seek_time(t0)
    copied_events[0] = 0
    again = reader.load_delta_t(span)
    np.testing.assert_array_equal(again, first)
    # before: a seek forgot the last window's size, and the window's array grew from the
    # buffer size by doubling, copying what it held at each step (about the window once)
    assert copied_events[0] < len(first) // 20


def test_a_count_read_does_not_size_the_next_window(recording):
    """The kept window size comes from time windows only: after reading everything by count
    and seeking back, a 1 ms window gets an array of about its size, not of the file's."""
    path, whole = recording
    reader = RawReader(path, index_interval_words=INTERVAL, max_events=4096)
    everything = reader.load_n_events(10**12)
    reader.seek_time(int(whole["t"][0]) + 10_000)
    window = reader.load_delta_t(1000)
    assert len(everything) == len(whole) and 0 < len(window) < 4096
    held = window if window.base is None else window.base
    assert len(held) < 8 * 4096          # before: an array of 1.25 x the file's events


def test_the_first_long_window_is_sized_from_its_first_events(recording, copied_events):
    path, whole = recording
    span = int(whole["t"][200_000]) - int(whole["t"][0])      # some 200 000 events, 49 buffers
    reader = RawReader(path, index_interval_words=INTERVAL, max_events=4096)
    first = reader.load_delta_t(span)
    in_window = int(np.searchsorted(whole["t"], span))     # the window is [0, span) µs
    np.testing.assert_array_equal(first, whole[:in_window])
    assert len(first) > 150_000
    # before: with no earlier window to take the size from, the array grew from two buffers by
    # doubling, copying what it held at each step (about the window once)
    assert copied_events[0] < len(first) // 20


def test_a_burst_at_the_start_does_not_size_a_huge_first_window(tmp_path, monkeypatch):
    # the first buffer of events within 2 µs, then a slow stream: the rate of the first events
    # alone would size the window for some 10^10 events (about 200 GB); the size is capped
    burst = row_run_events(5000, seed=3)
    burst["t"] = np.arange(len(burst)) * 2 // len(burst)
    slow = row_run_events(60_000, seed=4)
    slow["t"] = 2 + np.arange(len(slow)) * 50
    path = write_raw(tmp_path / "burst.raw", np.concatenate([burst, slow]), "evt3")
    whole = RawReader(path).read_all()
    sizes = []
    original = RecycledArrays.at_least

    def recording_sizes(pool, n, dtype):
        sizes.append(n)
        return original(pool, n, dtype)
    monkeypatch.setattr(RecycledArrays, "at_least", recording_sizes)
    reader = RawReader(path, max_events=4096)
    window = reader.load_delta_t(int(whole["t"][-1]) + 1)
    np.testing.assert_array_equal(window, whole)
    assert sizes[0] <= reader_module._RATE_GUESS_EVENTS + 64


@pytest.mark.parametrize("count", [250_000, 10**12])
def test_a_long_count_read_is_sized_from_the_events_the_file_has_left(recording, copied_events,
                                                                       count):
    path, whole = recording
    reader = RawReader(path, index_interval_words=INTERVAL, max_events=4096)
    reader.load_n_events(100_000)
    copied_events[0] = 0
    got = reader.load_n_events(count)
    np.testing.assert_array_equal(got, whole[100_000:100_000 + count])
    # before: the array grew from one buffer past the pending events by doubling, copying what
    # it held at each step (about the result once)
    assert copied_events[0] < len(got) // 20
    held = got if got.base is None else got.base
    assert len(held) < 2 * len(whole)                # 10**12: sized by the file, not the count
