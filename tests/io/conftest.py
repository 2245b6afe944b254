"""Fixtures of the RAW codec tests: the sample recordings, a chunked-decoding driver and a
count of the words RAW readers decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import evstream.io.raw_stream as raw_stream
from evstream.io.dtypes import EventCD, EventExtTrigger
from sample_oracle import ORACLE as FILE_ORACLE
from sample_oracle import samples_dir as find_samples


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return find_samples()


@pytest.fixture(scope="session")
def sample_words(samples_dir):
    """``name -> (words, (width, height))`` for the three RAW samples (header sizes from the README)."""
    def load(name: str, offset: int, dtype: str) -> np.ndarray:
        data = (samples_dir / name).read_bytes()[offset:]
        return np.frombuffer(data, dtype=dtype)
    return {
        "evt3": (load("expelliarmus_evt3_sample.raw", 166, "<u2"), (1280, 720)),
        "evt2_expelliarmus": (load("expelliarmus_evt2_sample.raw", 164, "<u4"), (640, 480)),
        "evt2_faery": (load("faery_evt2.raw", 166, "<u4"), (640, 480)),
    }


def decode_all(decoder, words: np.ndarray, chunk_sizes=None, ev_cap: int | None = None,
               tr_cap: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``words`` with ``decoder`` fed in chunks; returns (events, triggers) concatenated.

    ``chunk_sizes``: None (one chunk), an int, or an iterable of sizes (cycled).
    ``ev_cap`` / ``tr_cap``: output buffer sizes (default: large enough for one call).
    """
    if ev_cap is None:
        ev_cap = max(1, len(words)) * decoder.max_events_per_word
    ev = np.empty(ev_cap, EventCD)
    tr = np.empty(tr_cap, EventExtTrigger)
    if chunk_sizes is None:
        sizes = [max(1, len(words))]
    elif isinstance(chunk_sizes, int):
        sizes = [chunk_sizes]
    else:
        sizes = [max(1, int(s)) for s in chunk_sizes] or [1]
    evs, trs = [], []
    pos = k = 0
    while pos < len(words):
        chunk = words[pos:pos + sizes[k % len(sizes)]]
        k += 1
        done = 0
        while done < len(chunk):
            nw, ne, nt = decoder.decode(chunk[done:], ev, tr)
            assert nw > 0, "no progress with empty output buffers"
            assert 0 <= ne <= ev_cap and 0 <= nt <= tr_cap
            evs.append(ev[:ne].copy())
            trs.append(tr[:nt].copy())
            done += nw
        pos += len(chunk)
    return _join(evs, EventCD), _join(trs, EventExtTrigger)


def _join(parts, dtype) -> np.ndarray:
    """Concatenate keeping the exact (padded) dtype, which np.concatenate would canonicalise."""
    out = np.empty(sum(len(a) for a in parts), dtype)
    pos = 0
    for a in parts:
        out[pos:pos + len(a)] = a
        pos += len(a)
    return out


@pytest.fixture(scope="session")
def decode():
    """The :func:`decode_all` driver."""
    return decode_all


#: the oracle rows of shared/samples/README.md under this module's short names
ORACLE = {"evt3": FILE_ORACLE["expelliarmus_evt3_sample.raw"],
          "evt2_expelliarmus": FILE_ORACLE["expelliarmus_evt2_sample.raw"],
          "evt2_faery": FILE_ORACLE["faery_evt2.raw"]}


def oracle_stats(events: np.ndarray) -> tuple:
    """The oracle row of a decoded event array (same layout as :data:`ORACLE`)."""
    def row(e):
        return (int(e["t"]), int(e["x"]), int(e["y"]), int(e["p"]))
    return (len(events), row(events[0]), row(events[-1]), int(events["t"].astype(np.int64).sum()),
            int(events["x"].astype(np.int64).sum()), int(events["y"].astype(np.int64).sum()),
            int((events["p"] == 1).sum()), len(np.unique(events["t"])))


@pytest.fixture(scope="session")
def oracle():
    """``(ORACLE, oracle_stats)``."""
    return ORACLE, oracle_stats


@pytest.fixture
def decoded_words(monkeypatch):
    """The words RAW readers decode from now on (a list of one running total)."""
    total = [0]
    original = raw_stream.RawDecodeStream.decode_into

    def counting(stream, *args, **kwargs):
        before = stream.word_pos
        n = original(stream, *args, **kwargs)
        total[0] += stream.word_pos - before
        return n
    monkeypatch.setattr(raw_stream.RawDecodeStream, "decode_into", counting)
    return total
