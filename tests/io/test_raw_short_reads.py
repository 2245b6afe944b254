"""A seek followed by a short read (random access: samplers, viewers) decodes and reads from the
file little more than it returns; sequential reading still reaches full-buffer decodes."""

import numpy as np
import pytest

import evstream.io.raw as raw
from evstream.io import RawReader
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
    original = raw._RawDecodeStream.decode_into

    def recording_rooms(stream, out, *args, **kwargs):
        rooms.append(len(out))
        return original(stream, out, *args, **kwargs)
    monkeypatch.setattr(raw._RawDecodeStream, "decode_into", recording_rooms)
    reader.seek_event(1234)
    chunks = []
    while not reader.is_done():
        chunks.append(reader.load_n_events(500))
    np.testing.assert_array_equal(np.concatenate(chunks), whole[1234:])
    assert rooms[0] < rooms[1] < rooms[2]               # small after the seek, then doubling
    assert max(rooms) >= reader._buffer_events // 2     # up to the buffer's room
    assert len(rooms) < 20
