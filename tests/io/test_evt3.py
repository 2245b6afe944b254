"""EVT 3.0 decoder: every rule of formats.md §7 on hand-built words, and the public sample."""

import numpy as np
import pytest

from evstream.errors import EventArrayError, GeometryError
from evstream.io.dtypes import EventCD, EventExtTrigger
from evstream.io.evt3 import Evt3Decoder


def TH(v): return 0x8000 | v                    # noqa: E704  EVT_TIME_HIGH
def TL(v): return 0x6000 | v                    # noqa: E704  EVT_TIME_LOW
def Y(v): return 0x0000 | v                     # noqa: E704  EVT_ADDR_Y
def EMY(v): return 0x1000 | v                   # noqa: E704  EM_ADDR_Y
def X(x, p=0): return 0x2000 | (p << 11) | x    # noqa: E704  EVT_ADDR_X
def VB(x, p=0): return 0x3000 | (p << 11) | x   # noqa: E704  VECT_BASE_X
def V12(m): return 0x4000 | m                   # noqa: E704
def V8(m): return 0x5000 | m                    # noqa: E704
def TRIG(v, ch): return 0xA000 | (ch << 8) | v  # noqa: E704


def w16(*words):
    return np.array(words, dtype="<u2")


def run(words, width=2048, height=2048, decoder=None):
    d = decoder or Evt3Decoder(width, height)
    ev = np.zeros(len(words) * 12 + 12, EventCD)
    tr = np.zeros(len(words) + 1, EventExtTrigger)
    nw, ne, nt = d.decode(w16(*words), ev, tr)
    assert nw == len(words)
    return [tuple(int(v) for v in e) for e in ev[:ne]], tr[:nt], d


def test_basic_event_and_time():
    evs, _, d = run([TH(1), TL(5), Y(3), X(7, 1), X(8, 0)])
    assert evs == [(7, 3, 1, 4096 + 5), (8, 3, 0, 4096 + 5)]
    assert d.first_time_base == 4096
    assert d.time_shift_origin() == 0


def test_words_before_first_time_high_skipped_and_counted():
    evs, _, d = run([Y(9), VB(100, 1), X(5, 1), TL(7), V12(1), TH(2), X(3, 1), V8(1)])
    # no y, base x, polarity or time low taken from the skipped words
    assert evs == [(3, 0, 1, 8192), (0, 0, 0, 8192)]
    assert d.counters["words_before_time_high"] == 5
    assert d.counters["skipped_words"] == 0


def test_no_time_high_at_all():
    d = Evt3Decoder(10, 10)
    evs, _, _ = run([Y(1), X(1)], decoder=d)
    assert evs == [] and d.first_time_base == -1 and d.time_shift_origin() is None
    assert d.counters["words_before_time_high"] == 2


def test_time_high_wrap():
    evs, _, d = run([TH(4095), TL(4095), X(1), TH(0), X(2), TL(3), X(3), TH(4095), TH(0), X(4)])
    big = 1 << 24
    assert [e[3] for e in evs] == [(4095 << 12) + 4095, big, big + 3, 2 * big]
    assert int(d.get_state()[2]) == 2          # loops


@pytest.mark.parametrize("low,wraps", [(10, True), (11, False)])
def test_time_high_wrap_threshold(low, wraps):
    # wrap iff base - new >= 16,732,160 = (4095 - 10) << 12
    evs, _, _ = run([TH(4095), TH(low), X(0)])
    expected = (low << 12) + ((1 << 24) if wraps else 0)
    assert evs[0][3] == expected


def test_time_low_going_backwards_is_not_a_wrap():
    evs, _, _ = run([TH(2), TL(811), Y(1), X(1), TL(800), X(2), TL(0), X(3)])
    assert [e[3] for e in evs] == [8192 + 811, 8192 + 800, 8192]


def test_time_high_resets_time_low():
    evs, _, _ = run([TH(1), TL(100), TH(1), X(1), TH(2), X(2)])
    assert [e[3] for e in evs] == [4096, 8192]


def test_vectors_and_base_x_advance():
    evs, _, _ = run([TH(0), Y(4), VB(10, 1), V12(0b100000000101), V8(0b10000001),
                     V12(0), V8(0b1), X(0, 0)])
    assert evs == [(10, 4, 1, 0), (12, 4, 1, 0), (21, 4, 1, 0), (22, 4, 1, 0), (29, 4, 1, 0),
                   (42, 4, 1, 0), (0, 4, 0, 0)]  # 10 + 12 + 8 + 12


def test_vect8_ignores_bits_8_to_11():
    evs, _, _ = run([TH(0), Y(0), VB(0), V8(0xF01), V8(0x001)])
    assert [e[0] for e in evs] == [0, 8]


def test_em_addr_y_suppresses_cd_until_next_addr_y():
    evs, _, d = run([TH(0), EMY(5), X(1), VB(0, 1), V12(0xFFF), V8(0x3), Y(6), V8(0x1), X(7)])
    # base x advanced by 12 + 8 while EM: the CD vector starts at 20
    assert evs == [(20, 6, 1, 0), (7, 6, 0, 0)]
    assert d.counters["em_events"] == 1 + 12 + 2
    assert d.counters["out_of_bounds"] == 0


def test_padding_and_reserved_types_skipped_and_counted():
    words = [TH(0), 0x9999, 0x7123, 0xB000, 0xC000, 0xD000, 0xE000, 0xF000, Y(1), X(1)]
    evs, _, d = run(words)
    assert evs == [(1, 1, 0, 0)]
    assert d.counters["skipped_words"] == 7


def test_trigger_value_id_time():
    _, tr, d = run([TH(3), TL(9), TRIG(1, 5), TRIG(0, 15), TL(10), TRIG(1, 0)])
    assert [(int(r["p"]), int(r["id"]), int(r["t"])) for r in tr] == \
        [(1, 5, 3 * 4096 + 9), (0, 15, 3 * 4096 + 9), (1, 0, 3 * 4096 + 10)]
    assert d.counters["triggers"] == 3


def test_system_type_bit_of_addr_y_ignored():
    evs, _, _ = run([TH(0), Y(0x800 | 17), X(3)])
    assert evs == [(3, 17, 0, 0)]


def test_out_of_bounds_dropped_and_counted():
    evs, _, d = run([TH(0), Y(2), X(20), X(15), Y(9), X(1), VB(0), V12(0xFFF),
                     Y(3), VB(10, 1), V12(0xFFF)], width=16, height=8)
    assert evs == [(15, 2, 0, 0)] + [(x, 3, 1, 0) for x in range(10, 16)]
    assert d.counters["out_of_bounds"] == 1 + 1 + 12 + 6


def test_stops_before_word_when_buffers_are_short():
    d = Evt3Decoder(100, 100)
    ev = np.zeros(12, EventCD)
    tr = np.zeros(1, EventExtTrigger)
    assert d.decode(w16(TH(0), Y(1), X(1), X(2)), ev, tr) == (3, 1, 0)
    assert d.decode(w16(X(2)), ev, tr) == (1, 1, 0)
    assert d.decode(w16(TRIG(1, 1), TRIG(1, 2)), ev, tr) == (1, 0, 1)


def test_boundary_checks():
    d = Evt3Decoder(10, 10)
    ev = np.zeros(12, EventCD)
    tr = np.zeros(1, EventExtTrigger)
    with pytest.raises(EventArrayError):
        d.decode(np.zeros(4, "<u4"), ev, tr)
    with pytest.raises(EventArrayError):
        d.decode(np.zeros(8, "<u2")[::2], ev, tr)
    with pytest.raises(EventArrayError):
        d.decode(np.zeros(4, "<u2"), np.zeros(11, EventCD), tr)
    with pytest.raises(EventArrayError):
        d.decode(np.zeros(4, "<u2"), ev, np.zeros(0, EventExtTrigger))
    with pytest.raises(EventArrayError):
        d.decode(np.zeros(4, "<u2"), np.zeros(12, EventExtTrigger), tr)
    with pytest.raises(GeometryError):
        Evt3Decoder(0, 10)
    with pytest.raises(GeometryError):
        Evt3Decoder(10, 65537)
    with pytest.raises(EventArrayError):
        d.set_state(np.zeros(3, np.int64))


def test_readonly_words_accepted():
    w = w16(TH(0), Y(1), X(1))
    w.flags.writeable = False
    evs, _, _ = run(list(w))
    assert evs == [(1, 1, 0, 0)]
    d = Evt3Decoder(10, 10)
    assert d.decode(w, np.zeros(12, EventCD), np.zeros(1, EventExtTrigger)) == (3, 1, 0)


def test_state_roundtrip_and_reset(sample_words, decode):
    words, (w, h) = sample_words["evt3"]
    whole, _ = decode(Evt3Decoder(w, h), words)
    d1 = Evt3Decoder(w, h)
    first, _ = decode(d1, words[:100_001])
    d2 = Evt3Decoder(w, h)
    d2.set_state(d1.get_state())
    rest, _ = decode(d2, words[100_001:])
    assert np.array_equal(np.concatenate([first, rest]), whole)
    assert d2.first_time_base == d1.first_time_base == 11_718_656
    d2.reset()
    again, _ = decode(d2, words)
    assert np.array_equal(again, whole)


def test_sample_matches_oracle(sample_words, decode, oracle):
    table, stats = oracle
    words, (w, h) = sample_words["evt3"]
    d = Evt3Decoder(w, h)
    events, triggers = decode(d, words)
    assert stats(events) == table["evt3"]
    assert len(triggers) == 0
    assert np.all(np.diff(events["t"]) >= 0)
    assert d.counters == {"words_before_time_high": 0, "skipped_words": 0, "out_of_bounds": 0,
                          "triggers": 0, "em_events": 0}
    assert d.first_time_base == 11_718_656
    assert d.time_shift_origin() == 11_718_656 - 4096


def test_sample_chunked_equals_whole(sample_words, decode):
    words, (w, h) = sample_words["evt3"]
    whole, _ = decode(Evt3Decoder(w, h), words)
    rng = np.random.default_rng(3)
    for _ in range(3):
        sizes = rng.integers(1, 5000, size=200)
        ev_cap = int(rng.integers(12, 200))
        got, _ = decode(Evt3Decoder(w, h), words, sizes, ev_cap=ev_cap, tr_cap=1)
        assert np.array_equal(got, whole)
    # one word at a time, tiny output buffer, on a prefix
    n = 20_000
    part, _ = decode(Evt3Decoder(w, h), words[:n])
    got, _ = decode(Evt3Decoder(w, h), words[:n], 1, ev_cap=12, tr_cap=1)
    assert np.array_equal(got, part)
