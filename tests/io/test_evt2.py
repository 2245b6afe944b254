"""EVT 2.0 decoder: every rule of formats.md §5 on hand-built words, and both public samples."""

import numpy as np
import pytest

from evstream.errors import EventArrayError
from evstream.io.dtypes import EventCD, EventExtTrigger
from evstream.io.evt2 import Evt2Decoder

MAXH = (1 << 28) - 1


def TH(v): return (0x8 << 28) | v                                        # noqa: E704
def CD(x, y, p=0, lsb=0): return (p << 28) | (lsb << 22) | (x << 11) | y  # noqa: E704
def TRIG(v, ch, lsb=0): return (0xA << 28) | (lsb << 22) | (ch << 8) | v  # noqa: E704


def run(words, width=2048, height=2048, decoder=None):
    d = decoder or Evt2Decoder(width, height)
    ev = np.zeros(len(words) + 1, EventCD)
    tr = np.zeros(len(words) + 1, EventExtTrigger)
    nw, ne, nt = d.decode(np.array(words, dtype="<u4"), ev, tr)
    assert nw == len(words)
    return [tuple(int(v) for v in e) for e in ev[:ne]], tr[:nt], d


def test_cd_events_and_time():
    evs, _, d = run([TH(5), CD(2047, 2047, 1, 63), CD(0, 1, 0, 0)])
    assert evs == [(2047, 2047, 1, 5 * 64 + 63), (0, 1, 0, 5 * 64)]
    assert d.first_time_base == 320 and d.time_shift_origin() == 320


def test_words_before_first_time_high_skipped_and_counted():
    evs, _, d = run([CD(1, 1), TRIG(1, 1), 0xE0000000, TH(1), CD(2, 2, 1, 3)])
    assert evs == [(2, 2, 1, 67)]
    assert d.counters["words_before_time_high"] == 3
    assert d.counters["skipped_words"] == 0 and d.counters["triggers"] == 0


def test_time_high_wrap():
    evs, _, d = run([TH(MAXH), CD(1, 1, 0, 63), TH(0), CD(2, 2, 0, 1), TH(MAXH), TH(3), CD(3, 3)])
    big = 1 << 34
    assert [e[3] for e in evs] == [(MAXH << 6) + 63, big + 1, 2 * big + 192]


@pytest.mark.parametrize("low,wraps", [(10, True), (11, False)])
def test_time_high_wrap_threshold(low, wraps):
    # wrap iff base - new >= 17,179,869,120 - 640
    evs, _, _ = run([TH(MAXH), TH(low), CD(0, 0)])
    assert evs[0][3] == (low << 6) + ((1 << 34) if wraps else 0)


def test_time_high_going_back_a_little_is_not_a_wrap():
    evs, _, _ = run([TH(1000), TH(999), CD(0, 0)])
    assert evs[0][3] == 999 * 64


def test_trigger_value_id_time():
    _, tr, d = run([TH(2), TRIG(1, 31, 5), TRIG(0, 3, 63)])
    assert [(int(r["p"]), int(r["id"]), int(r["t"])) for r in tr] == [(1, 31, 133), (0, 3, 191)]
    assert d.counters["triggers"] == 2


def test_other_types_skipped_and_counted():
    others = [t << 28 | 0x123 for t in (2, 3, 4, 5, 6, 7, 9, 0xB, 0xC, 0xD, 0xE, 0xF)]
    evs, _, d = run([TH(0)] + others + [CD(1, 1)])
    assert evs == [(1, 1, 0, 0)]
    assert d.counters["skipped_words"] == len(others)


def test_out_of_bounds_dropped_and_counted():
    evs, _, d = run([TH(0), CD(10, 1), CD(9, 1), CD(1, 5), CD(1, 4)], width=10, height=5)
    assert evs == [(9, 1, 0, 0), (1, 4, 0, 0)]
    assert d.counters["out_of_bounds"] == 2


def test_stops_before_word_when_buffers_are_short():
    d = Evt2Decoder(100, 100)
    ev = np.zeros(1, EventCD)
    tr = np.zeros(1, EventExtTrigger)
    assert d.decode(np.array([TH(0), CD(1, 1), CD(2, 2)], "<u4"), ev, tr) == (2, 1, 0)
    assert d.decode(np.array([TRIG(1, 1), TRIG(1, 1)], "<u4"), ev, tr) == (1, 0, 1)
    with pytest.raises(EventArrayError):
        d.decode(np.array([TH(0)], "<u4"), np.zeros(0, EventCD), tr)
    with pytest.raises(EventArrayError):
        d.decode(np.zeros(1, "<u2"), ev, tr)


@pytest.mark.parametrize("name", ["evt2_expelliarmus", "evt2_faery"])
def test_samples_match_oracle(name, sample_words, decode, oracle):
    table, stats = oracle
    words, (w, h) = sample_words[name]
    d = Evt2Decoder(w, h)
    events, triggers = decode(d, words)
    assert stats(events) == table[name]
    assert len(triggers) == 0
    assert np.all(np.diff(events["t"]) >= 0)
    assert d.counters == {"words_before_time_high": 0, "skipped_words": 0, "out_of_bounds": 0,
                          "triggers": 0}
    # both samples start with an event at the first time base
    assert d.time_shift_origin() == d.first_time_base == table[name][1][0]


@pytest.mark.parametrize("name", ["evt2_expelliarmus", "evt2_faery"])
def test_sample_chunked_equals_whole(name, sample_words, decode):
    words, (w, h) = sample_words[name]
    whole, _ = decode(Evt2Decoder(w, h), words)
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 20_000, size=100)
    got, _ = decode(Evt2Decoder(w, h), words, sizes, ev_cap=int(rng.integers(1, 100)), tr_cap=1)
    assert np.array_equal(got, whole)
    n = 10_000
    part, _ = decode(Evt2Decoder(w, h), words[:n])
    got, _ = decode(Evt2Decoder(w, h), words[:n], 1, ev_cap=1, tr_cap=1)
    assert np.array_equal(got, part)
