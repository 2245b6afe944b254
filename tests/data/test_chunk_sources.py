"""The chunk-source protocol (evstream.data.chunks) on both kinds of recording: skipping n chunks
gives the chunk and window an uninterrupted run gives next, and a tensor file skips without
reading its rows."""

from __future__ import annotations

import os

import numpy as np
import pytest

from evstream.data.cd_processor_iterator import CDProcessorIterator
from evstream.data.chunks import ChunkSource, TensorFileChunks
from evstream.preprocessing.hdf5 import generate_hdf5

from seqloader_data import synthetic_events, write_dat

H, W, T = 24, 32, 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunks")
    ev = synthetic_events(200_000, rate_per_ms=100, height=H, width=W, seed=3)   # 20,000
    dat = write_dat(folder / "rec.dat", ev, height=H, width=W)
    out = {"dat": dat}
    for mode, kwargs in (("delta_t", dict(delta_t=5000)), ("n_events", dict(n_events=700))):
        generate_hdf5([dat], os.fspath(folder / mode), "histo", kwargs.get("delta_t", 0),
                      n_processes=1, mode=mode, n_events=kwargs.get("n_events", 0))
        out[mode] = os.fspath(folder / mode / "rec.h5")
    return out


def _sources(files, mode):
    size = dict(delta_t=5000, n_events=700)
    kwargs = dict(mode=mode, num_tbins=T, delta_t=size["delta_t"], n_events=size["n_events"])
    yield "events", lambda: CDProcessorIterator(files["dat"], "histo", **kwargs)
    yield "tensor file", lambda: TensorFileChunks(files[mode], "histo", **kwargs)


def _all_chunks(source):
    chunks = []
    while True:
        out = np.empty((T, 2, H, W), np.float32)
        try:
            info = source.next_chunk(out)
        except StopIteration:
            return chunks
        chunks.append((info, out, source.get_time()))


@pytest.mark.parametrize("mode", ["delta_t", "n_events"])
@pytest.mark.parametrize("skip", [1, 4, 1000])
def test_skip_then_next_is_the_uninterrupted_run(files, mode, skip):
    for name, make in _sources(files, mode):
        source = make()
        assert isinstance(source, ChunkSource), name
        full = _all_chunks(source)
        source.close()
        assert len(full) > 5, name
        source = make()
        source.skip(skip)
        rest = _all_chunks(source)
        source.close()
        assert len(rest) == max(len(full) - skip, 0), name
        for (a, ta, ea), (b, tb, eb) in zip(full[skip:], rest):
            assert a == b and ea == eb, name
            assert np.array_equal(ta, tb), name


@pytest.mark.parametrize("mode", ["delta_t", "n_events"])
def test_a_tensor_file_skips_without_reading_rows(files, mode, monkeypatch):
    source = TensorFileChunks(files[mode], "histo", mode=mode, num_tbins=T, delta_t=5000,
                              n_events=700)
    total = source.remaining()
    reads = []
    original = source.h5.read_rows
    monkeypatch.setattr(source.h5, "read_rows", lambda a, b: reads.append((a, b)) or original(a, b))
    source.skip(3)
    assert reads == [] and source.remaining() == total - 3
    source.next_chunk(np.empty((T, 2, H, W), np.float32))
    assert reads == [(3 * T, 4 * T)]
    source.close()
