"""``RawDecodeStream.decode_into`` (the decode loop under every RAW read) with outputs of any size:
it stops when fewer slots remain than one word may fill, also at the end of a checkpoint interval
(issue: there it called the decoder with that too-small rest of the output, which raised)."""

import numpy as np
import pytest

from evstream.io import EventCD, RawReader
from evstream.io.raw_stream import RawDecodeStream, RawIndex
from raw_files import RAW_KINDS, row_run_events, write_raw


@pytest.mark.parametrize("kind", sorted(RAW_KINDS))
def test_outputs_that_fill_at_an_interval_end(kind, tmp_path):
    path = write_raw(tmp_path / f"{kind}.raw", row_run_events(20_000, seed=9), kind)
    reader = RawReader(path, do_time_shifting=False, index_interval_words=64)
    want = reader.read_all()
    decoder = reader._new_decoder()
    stream = RawDecodeStream(str(path), reader.header, reader._stream.n_words, RawIndex(64), decoder)
    out = np.empty(len(want) + 64, dtype=EventCD)
    sizes = range(decoder.max_events_per_word, decoder.max_events_per_word + 29)
    n, calls = 0, 0
    while stream.word_pos < stream.n_words:
        room = sizes[calls % len(sizes)]           # every room size, so some fill at interval ends
        n += stream.decode_into(out[n:n + room], lambda tr: None, lambda dropped: None)
        calls += 1
    stream.close()
    assert np.array_equal(out[:n], want) and calls > len(want) // sizes[-1]
