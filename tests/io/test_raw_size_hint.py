"""RawReader's size guess for read_all: from the events per word of the file's first words, so
that a whole-file decode of a vector-heavy EVT 3.0 file allocates its output once."""

from __future__ import annotations

import numpy as np
import pytest

from evstream.io import EventCD, RawReader, RawWriter
from evstream.io import raw as raw_module


def _rows(n_rows: int, width: int = 64) -> np.ndarray:
    """Full rows of 48 neighbouring pixels at one time each: EVT 3.0 writes them as vectors."""
    ev = np.zeros(n_rows * 48, EventCD)
    ev["t"] = np.repeat(np.arange(n_rows) * 3, 48)
    ev["y"] = np.repeat(np.arange(n_rows) % 32, 48)
    ev["x"] = np.tile(np.arange(48), n_rows)
    ev["p"] = np.repeat(np.arange(n_rows) % 2, 48)
    return ev


@pytest.mark.parametrize("fmt", ["evt3", "evt2", "evt21"])
def test_size_hint_close_to_the_event_count(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(raw_module, "SIZE_SAMPLE_WORDS", 4096)
    ev = _rows(4000)
    path = tmp_path / f"v_{fmt}.raw"
    with RawWriter(path, 32, 64, format=fmt) as w:
        w.write(ev)
    reader = RawReader(path)
    hint = reader._size_hint()
    assert len(ev) <= hint <= 1.1 * len(ev) + 1024      # EVT 3.0: ~5 events per word
    np.testing.assert_array_equal(RawReader(path, do_time_shifting=False).read_all(), ev)


def test_size_hint_empty_and_complete(tmp_path):
    path = tmp_path / "e.raw"
    with RawWriter(path, 32, 64, format="evt3") as w:
        w.write(np.zeros(0, EventCD))
    assert RawReader(path)._size_hint() >= 0
    path = tmp_path / "c.raw"
    with RawWriter(path, 32, 64, format="evt3") as w:
        w.write(_rows(10))
    reader = RawReader(path)
    reader.event_count()
    assert reader._size_hint() == 480
