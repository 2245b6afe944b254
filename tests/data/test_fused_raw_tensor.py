"""The fused RAW EVT 3.0 / 2.0 -> tensor path (evstream.preprocessing.fused) used by CDProcessorIterator:
tensors, windows, event counts and warnings identical to the unfused path (decode the window,
then the registry function), on random files, window edges, downsampling, start/max_duration,
out-of-sensor events, triggers, vectors and gaps; plus a pure-numpy reference on a small case."""

from __future__ import annotations

import hashlib
import re
import warnings

import numpy as np
import pytest

from evstream.data.cd_processor_iterator import CDProcessorIterator
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.io import EventCD, EventExtTrigger, RawWriter
from evstream.io.header import read_raw_header
from evstream.preprocessing import fused as fused_module
from evstream.preprocessing.fused import RawTensorChunks

pytestmark = pytest.mark.timeout(300)

FUSED = ("histo", "diff", "stacked_histogram")


def _events(rng, n, duration, height, width, edges=()):
    """Sorted events: random pixels, runs on rows (so the writer emits vectors), and events at
    the given times (window and bin edges)."""
    t = np.sort(np.concatenate([rng.integers(0, duration, n), np.asarray(edges, np.int64)]))
    ev = np.zeros(len(t), EventCD)
    ev["t"] = t
    ev["y"] = rng.integers(0, height, len(t))
    ev["x"] = rng.integers(0, width, len(t))
    ev["p"] = rng.integers(0, 2, len(t))
    runs = rng.random(len(t)) < 0.5          # half the events continue the previous one's row
    for i in np.flatnonzero(runs[1:]) + 1:
        if ev["t"][i] == ev["t"][i - 1] and ev["x"][i - 1] + 1 < width:
            ev["y"][i], ev["x"][i], ev["p"][i] = ev["y"][i - 1], ev["x"][i - 1] + 1, ev["p"][i - 1]
    order = np.lexsort((ev["x"], ev["y"], ev["t"]))
    return ev[order]


def _write(path, ev, height, width, triggers=None, fmt="evt3"):
    with RawWriter(path, height, width, format=fmt) as w:
        w.write(ev, triggers)
    return path


def _chunks(path, name, monkeypatch, fused, digests=False, **kw):
    """Every chunk of the iterator (``digests``: the SHA-256 of each chunk's bytes instead, so
    that thousands of 3.7 MB chunks are compared without holding them: 15.9 GB of peak memory
    for the real sample's 3 µs windows before), with its infos, statistics and warnings."""
    monkeypatch.setenv("EVSTREAM_FUSED", "1" if fused else "0")
    it = CDProcessorIterator(path, name, **kw)
    assert (it._fused is not None) == fused
    out, infos = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while True:
            arr = np.full((it.num_tbins, it.cin, it.height, it.width), -7, np.float32)
            try:
                infos.append(it.next_chunk(arr))
            except StopIteration:
                break
            out.append(hashlib.sha256(arr).hexdigest() if digests else arr)
    # the warning's "first N" is the size of the first decoded batch with a drop: it depends on
    # how far ahead each path decodes, the running total does not
    msgs = [re.sub(r"first \d+", "first N", str(w.message)) for w in caught]
    stats = {k: it.stats[k] for k in ("chunks", "events", "dropped")}
    it.close()
    return out, infos, stats, msgs, it.events_iterator.reader.out_of_bounds_count


def _assert_same(path, name, monkeypatch, **kw):
    a = _chunks(path, name, monkeypatch, False, digests=True, **kw)
    b = _chunks(path, name, monkeypatch, True, digests=True, **kw)
    assert len(a[0]) >= 1
    assert a[0] == b[0]                             # bit-identical chunks, in order
    assert a[1:] == b[1:]
    return a


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
@pytest.mark.parametrize("seed", range(8))
def test_random_files_identical(tmp_path, monkeypatch, seed, fmt):
    """Also across many read blocks and pieces: the fused path reads 997 words and hands 100
    events at a time here (regression: a short last block was decoded with stale words)."""
    monkeypatch.setattr(fused_module, "WORDS_PER_BLOCK", 997 if seed % 2 else 1 << 20)
    monkeypatch.setattr(fused_module, "CHUNK_EVENTS", 100 if seed % 4 < 2 else 1 << 15)
    rng = np.random.default_rng(seed)
    height, width = [(48, 64), (30, 40), (64, 96), (17, 33)][seed % 4]
    delta_t = int(rng.integers(200, 3000))
    tbins = int(rng.integers(1, 5))
    chunk = delta_t * tbins
    duration = int(rng.integers(3, 9)) * chunk + int(rng.integers(0, chunk))
    edges = [k * delta_t + d for k in range(duration // delta_t + 1) for d in (-1, 0, 1)]
    ev = _events(rng, int(rng.integers(500, 6000)), duration, height, width,
                 edges=[e for e in edges if e >= 0])
    path = _write(tmp_path / "r.raw", ev, height, width, fmt=fmt)
    for name in FUSED:
        for k in (0, 1, 2):
            if (height >> k) < 1 or (width >> k) < 1:
                continue
            h, w = -(-height // (1 << k)), -(-width // (1 << k))
            if k and (h << k != height or w << k != width):
                continue
            _assert_same(path, name, monkeypatch, delta_t=delta_t, num_tbins=tbins,
                         height=h, width=w)


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
@pytest.mark.parametrize("name", FUSED)
def test_start_max_duration_and_kwargs(tmp_path, monkeypatch, name, fmt):
    rng = np.random.default_rng(11)
    ev = _events(rng, 8000, 50_000, 40, 64, edges=(10_000, 12_345, 20_000, 29_999))
    path = _write(tmp_path / "s.raw", ev, 40, 64, fmt=fmt)
    kwargs = ({"max_incr_per_pixel": 2} if name != "stacked_histogram" else {"count_cutoff": 3})
    for start, md in ((0, None), (10_000, None), (12_345, 17_655), (3, 40_001), (49_000, None)):
        _assert_same(path, name, monkeypatch, delta_t=1000, num_tbins=4, start_ts=start,
                     max_duration=md, preprocess_kwargs=kwargs)


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
def test_out_of_sensor_events_and_triggers(tmp_path, monkeypatch, fmt):
    """Events beyond a (patched) header geometry are dropped with the reader's warning and
    count on both paths; triggers interleaved with the events change nothing."""
    rng = np.random.default_rng(3)
    ev = _events(rng, 6000, 40_000, 48, 64)
    triggers = np.zeros(300, EventExtTrigger)
    triggers["t"] = np.sort(rng.integers(0, 40_000, 300))
    triggers["p"] = np.arange(300) % 2
    path = _write(tmp_path / "o.raw", ev, 48, 64, triggers, fmt=fmt)
    data = bytearray(path.read_bytes())
    offset = read_raw_header(str(path)).data_offset
    head = bytes(data[:offset])
    assert head.count(b"64") == 2
    data[:offset] = head.replace(b"64", b"50")          # width 64 -> 50 in both header lines
    path.write_bytes(bytes(data))
    a = _assert_same(path, "histo", monkeypatch, delta_t=2500, num_tbins=2, height=48, width=50)
    n_out = int((ev["x"] >= 50).sum())
    assert n_out > 0 and a[4] == n_out and any("dropping events" in m for m in a[3])
    assert a[2]["events"] == len(ev) - n_out


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
def test_gaps_and_empty_windows(tmp_path, monkeypatch, fmt):
    """Long gaps (TIME_HIGH words only, empty windows) and a recording that starts late; blocks
    of 64 words, so the look-ahead for a next event crosses blocks."""
    monkeypatch.setattr(fused_module, "WORDS_PER_BLOCK", 64)
    rng = np.random.default_rng(5)
    parts = [_events(rng, 500, 3000, 32, 32) for _ in range(3)]
    parts[1]["t"] += 900_000                # gap of ~0.9 s: TIME_HIGH words, no events
    parts[2]["t"] += 40_000_000             # past a TIME_HIGH wrap (2^24 µs)
    ev = np.concatenate(parts)
    ev["t"] += 70_000
    path = _write(tmp_path / "g.raw", ev, 32, 32, fmt=fmt)
    for name in FUSED:
        _assert_same(path, name, monkeypatch, delta_t=50_000, num_tbins=2)


def test_numpy_reference_small_case(tmp_path, monkeypatch):
    """A hand-sized histo: counts computed with numpy, increment 1/4, clamped at 1."""
    ev = np.zeros(7, EventCD)
    ev["t"] = [0, 10, 10, 10, 999, 1000, 1999]
    ev["x"] = [1, 2, 3, 2, 2, 0, 7]
    ev["y"] = [0, 1, 1, 1, 1, 3, 3]
    ev["p"] = [1, 0, 0, 0, 0, 1, 1]
    path = _write(tmp_path / "h.raw", ev, 4, 8)
    out, infos, stats, _, _ = _chunks(path, "histo", monkeypatch, True, delta_t=500, num_tbins=2,
                                      preprocess_kwargs={"max_incr_per_pixel": 4},
                                      do_time_shifting=False)
    assert stats["events"] == 7 and len(out) == 2
    expected = np.zeros((2, 2, 2, 4, 8), np.float32)
    for ti, x, y, p in zip(ev["t"], ev["x"], ev["y"], ev["p"]):
        c, b = divmod(int(ti), 1000)
        expected[c, min(b // 500, 1), p, y, x] += 0.25
    np.testing.assert_array_equal(np.stack(out), np.minimum(expected, 1))
    assert [(i.start, i.duration, i.n_events) for i in infos] == [(0, 1000, 5), (1000, 1000, 2)]


def test_stream_loader_uses_it(tmp_path, monkeypatch):
    """CDProcessorDataLoader (one worker) gives the same batches fused and unfused."""
    rng = np.random.default_rng(9)
    paths = [_write(tmp_path / f"l{i}.raw", _events(rng, 3000, 20_000 + 5000 * i, 48, 64), 48, 64)
             for i in range(3)]
    batches = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("EVSTREAM_FUSED", flag)
        loader = CDProcessorDataLoader(paths, mode="delta_t", delta_t=2000, n_events=0,
                                       max_duration=None, preprocess_function_name="histo",
                                       num_tbins=3, batch_size=2, num_workers=0, height=48,
                                       width=64)
        batches[flag] = [b["inputs"].clone() for b in loader]
    assert len(batches["0"]) == len(batches["1"]) > 1
    for a, b in zip(batches["0"], batches["1"]):
        assert a.numpy().tobytes() == b.numpy().tobytes()


def test_not_fused_when_it_cannot_be_identical(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    path = _write(tmp_path / "n.raw", _events(rng, 100, 5000, 16, 16), 16, 16)
    monkeypatch.setenv("EVSTREAM_FUSED", "1")
    assert CDProcessorIterator(path, "histo", delta_t=1000)._fused is not None
    assert CDProcessorIterator(path, "event_cube", delta_t=1000)._fused is None
    assert CDProcessorIterator(path, "histo", mode="n_events", n_events=10)._fused is None
    assert CDProcessorIterator(path, "histo", delta_t=1000, out_of_bounds="keep")._fused is None
    evt21 = _write(tmp_path / "n21.raw", _events(rng, 100, 5000, 16, 16), 16, 16, fmt="evt21")
    assert CDProcessorIterator(evt21, "histo", delta_t=1000)._fused is None
    with pytest.raises(ValueError):
        RawTensorChunks(CDProcessorIterator(path, "histo", delta_t=1000,
                                            out_of_bounds="raise").events_iterator.reader, 1000)


@pytest.mark.parametrize("delta_t", [3, 7, 13, 50, 100])
@pytest.mark.parametrize("start_ts", [0, 4100])
def test_real_evt3_sample_identical(monkeypatch, delta_t, start_ts):
    """The public Gen4.1 EVT 3.0 recording has back-to-back TIME_LOW words that step back (811
    then 800): a window must end at the first *event* at or past its end, not at the first time
    word (the first fused version stopped at time words and differed on this file)."""
    from sample_oracle import sample
    _assert_same(sample("expelliarmus_evt3_sample.raw"), "histo", monkeypatch, delta_t=delta_t,
                 num_tbins=2, start_ts=start_ts, height=360, width=640)
