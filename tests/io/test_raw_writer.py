"""RawWriter and the EVT 3.0 / EVT 2.0 encoders: exact round trips, compactness, checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstream.errors import EventArrayError, FileFormatError, GeometryError
from evstream.io.dtypes import EventCD
from evstream.io.evt2 import Evt2Decoder
from evstream.io.evt3 import Evt3Decoder
from evstream.io.header import read_raw_header
from evstream.io.raw_writer import RawWriter, encode_words, new_encoder_state

DECODERS = {"evt3": Evt3Decoder, "evt2": Evt2Decoder}


def make_events(t, x, y, p):
    e = np.zeros(len(t), EventCD)
    e["t"], e["x"], e["y"], e["p"] = t, x, y, p
    return e


def random_events(rng, n, width=1280, height=720, t_max=1 << 26):
    t = np.sort(rng.integers(0, t_max, n))
    return make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


def read_back(path, decode):
    hdr = read_raw_header(path)
    words = np.fromfile(path, dtype=DECODERS[hdr.encoding].word_dtype, offset=hdr.data_offset)
    d = DECODERS[hdr.encoding](hdr.width, hdr.height)
    events, triggers = decode(d, words)
    assert len(triggers) == 0
    assert d.counters["out_of_bounds"] == 0 and d.counters["skipped_words"] == 0
    return hdr, events


def roundtrip_words(events, fmt, decode, width=2048, height=2048):
    words = encode_words(events, fmt)
    got, _ = decode(DECODERS[fmt](width, height), words)
    return words, got


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
def test_file_roundtrip_and_header(tmp_path, fmt, decode):
    rng = np.random.default_rng(1)
    ev = random_events(rng, 20_000)
    p = tmp_path / f"out_{fmt}.raw"
    with RawWriter(p, height=720, width=1280, format=fmt, header={"serial_number": "42"}) as w:
        w.write(ev[:7000])
        w.write(ev[7000:7000])
        w.write(ev[7000:])
    hdr, got = read_back(p, decode)
    assert np.array_equal(got, ev)
    assert (hdr.width, hdr.height, hdr.geometry_source) == (1280, 720, "geometry")
    keys = list(hdr.fields)
    assert keys[:4] == ["date", "evt", "format", "geometry"] and keys[-1] == "serial_number"
    assert hdr.fields["evt"] == ("3.0" if fmt == "evt3" else "2.0")
    assert hdr.fields["format"] == ("EVT3" if fmt == "evt3" else "EVT2") + ";height=720;width=1280"
    assert hdr.fields["geometry"] == "1280x720"
    text = p.read_bytes()[:hdr.data_offset].decode()
    assert text.endswith("% end\n")


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
def test_large_times_and_gaps(fmt, decode):
    big = 1 << 24 if fmt == "evt3" else 1 << 34
    t = np.array([0, 1, 4095, 4096, big - 1, big, big + 1, 3 * big - 7, 3 * big + 5000,
                  10 * big + 123, 10 * big + 123, (1 << 40) + 17, (1 << 40) + 17 + big // 2,
                  (1 << 40) + 3 * big], dtype=np.int64)
    n = len(t)
    ev = make_events(t, np.arange(n) * 7, np.arange(n) * 3, np.arange(n) % 2)
    _, got = roundtrip_words(ev, fmt, decode)
    assert np.array_equal(got, ev)
    # starting beyond the first period, and every start position around a wrap
    for start in (big - 4096, big - 64, big, 5 * big + 77):
        ev = make_events(start + np.arange(0, 200_000, 997), 0, 0, 1)
        _, got = roundtrip_words(ev, fmt, decode)
        assert np.array_equal(got, ev)


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_roundtrip(fmt, data, decode):
    seed = data.draw(st.integers(0, 2**32 - 1))
    n = data.draw(st.integers(1, 400))
    rng = np.random.default_rng(seed)
    scale = data.draw(st.sampled_from([1, 50, 5000, 1 << 20, 1 << 30, 1 << 36]))
    dt = rng.integers(0, scale, n) * (rng.random(n) < data.draw(st.floats(0.05, 1.0)))
    t = np.cumsum(dt) + data.draw(st.integers(0, 1 << 40))
    width = data.draw(st.integers(1, 2048))
    height = data.draw(st.integers(1, 2048))
    # same-t bursts along a row, with repeats and reversals mixed in
    x = np.clip(rng.integers(0, 40, n) + np.cumsum(rng.integers(-3, 4, n)) % width, 0, width - 1)
    y = rng.integers(0, min(height, 4), n) if data.draw(st.booleans()) else rng.integers(0, height, n)
    ev = make_events(t, x, y, rng.integers(0, 2, n) * data.draw(st.sampled_from([0, 1])))
    chunks = np.sort(rng.integers(0, n + 1, data.draw(st.integers(0, 4))))
    words = encode_words(ev, fmt)
    got, _ = decode(DECODERS[fmt](width, height), words)
    assert np.array_equal(got, ev)
    # same stream written in several calls (encoder state carried over)
    state = new_encoder_state()
    words2 = np.concatenate([encode_words(part, fmt, state) for part in np.split(ev, chunks)])
    got2, _ = decode(DECODERS[fmt](width, height), words2)
    assert np.array_equal(got2, ev)


def test_evt3_compact_row_burst(decode):
    n_rows, width = 50, 1280
    t = np.repeat(np.arange(n_rows) * 10, width)
    y = np.repeat(np.arange(n_rows) % 720, width)
    x = np.tile(np.arange(width), n_rows)
    ev = make_events(t, x, y, 1)
    words, got = roundtrip_words(ev, "evt3", decode, 1280, 720)
    assert np.array_equal(got, ev)
    assert len(words) / len(ev) < 0.1
    types = np.bincount(words >> 12, minlength=16)
    assert types[0x4] >= n_rows * width // 12 - n_rows
    assert types[0x2] == 0                               # no single-event word needed
    assert types[0x8] <= 2 and types[0x0] == n_rows


def test_evt3_word_rules(decode):
    # TIME_HIGH only when it changes, TIME_LOW only when the low part changes, ADDR_Y on change
    ev = make_events([5, 5, 5, 4096, 4096, 4097], [1, 9, 3, 2, 2, 2], [0, 0, 0, 0, 1, 1],
                     [0, 1, 1, 0, 0, 0])
    words, got = roundtrip_words(ev, "evt3", decode)
    assert np.array_equal(got, ev)
    assert [hex(w) for w in words] == [hex(w) for w in [
        0x8000, 0x6005, 0x0000, 0x2001, 0x2809, 0x2803,       # t=5: y=0, three ADDR_X
        0x8001, 0x2002, 0x0001, 0x2002, 0x6001, 0x2002]]      # t=4096: TL 0 implied


def test_evt3_vectors_preserve_order(decode):
    # decreasing or repeated x within a burst must not be merged into a vector
    ev = make_events([7] * 8, [10, 11, 12, 12, 5, 6, 7, 8], 3, 1)
    words, got = roundtrip_words(ev, "evt3", decode)
    assert np.array_equal(got, ev)
    types = list(np.asarray(words) >> 12)
    assert types.count(0x3) == 2 and types.count(0x5) + types.count(0x4) == 2
    # a run longer than one window, with gaps, then a jump beyond the next window
    xs = [100, 101, 105, 111, 112, 130, 500, 501]
    ev = make_events([9] * len(xs), xs, 4, 0)
    _, got = roundtrip_words(ev, "evt3", decode)
    assert np.array_equal(got, ev)


@pytest.mark.parametrize("fmt", ["evt3", "evt2"])
def test_reencode_samples(fmt, sample_words, decode):
    words, (w, h) = sample_words["evt3"]
    ev, _ = decode(Evt3Decoder(w, h), words)
    new_words, got = roundtrip_words(ev, fmt, decode, w, h)
    assert np.array_equal(got, ev)
    if fmt == "evt3":
        assert len(new_words) <= len(words)
    words2, (w2, h2) = sample_words["evt2_faery"]
    ev2, _ = decode(Evt2Decoder(w2, h2), words2)
    _, got2 = roundtrip_words(ev2, fmt, decode, w2, h2)
    assert np.array_equal(got2, ev2)


def test_rejects(tmp_path):
    p = tmp_path / "r.raw"
    w = RawWriter(p, height=10, width=20)
    with pytest.raises(EventArrayError, match="r.raw"):
        w.write(np.zeros(3, dtype=[("t", "<i8"), ("x", "<u2")]))
    with pytest.raises(EventArrayError, match="EventCD"):
        w.write(np.zeros(3, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<f8")]))
    with pytest.raises(EventArrayError):
        w.write(np.zeros((2, 2), EventCD))
    with pytest.raises(EventArrayError):
        w.write([1, 2, 3])
    with pytest.raises(EventArrayError, match="decrease"):
        w.write(make_events([5, 4], 0, 0, 0))
    with pytest.raises(EventArrayError, match="negative"):
        w.write(make_events([-1], 0, 0, 0))
    with pytest.raises(EventArrayError, match="x = 20"):
        w.write(make_events([1], 20, 0, 0))
    with pytest.raises(EventArrayError, match="y = 10"):
        w.write(make_events([1], 0, 10, 0))
    with pytest.raises(EventArrayError, match="polarity"):
        w.write(make_events([1], 0, 0, 2))
    w.write(make_events([100], 0, 0, 0))
    with pytest.raises(EventArrayError, match="across"):
        w.write(make_events([99], 0, 0, 0))
    w.close()
    w.close()
    with pytest.raises(EventArrayError, match="closed"):
        w.write(make_events([200], 0, 0, 0))
    with pytest.raises(GeometryError):
        RawWriter(tmp_path / "g.raw", height=10, width=4096)
    with pytest.raises(FileFormatError):
        RawWriter(tmp_path / "f.raw", height=10, width=10, format="evt4")
    with pytest.raises(FileFormatError, match="layout"):
        RawWriter(tmp_path / "f.raw", height=10, width=10, format="evt21", evt21_layout="big")
    with pytest.raises(FileFormatError):
        RawWriter(tmp_path / "h.raw", height=10, width=10, header={"evt": "2.0"})


def test_packed_layout_of_the_same_fields_is_accepted(tmp_path, decode):
    ev = make_events([1, 2, 3], [4, 5, 6], 1, 0)
    packed = np.concatenate([ev[:1], ev[1:]])
    assert packed.dtype != EventCD            # np.concatenate drops EventCD's padding
    p = tmp_path / "c.raw"
    with RawWriter(p, height=4, width=16) as w:
        w.write(packed)
    _, got = read_back(p, decode)
    assert np.array_equal(got, ev)


def test_user_date_and_padding_bytes_ignored(tmp_path, decode):
    ev = np.empty(30, EventCD)               # uninitialised padding bytes
    ev.view(np.uint8)[:] = 0xAB
    ev["t"], ev["x"], ev["y"], ev["p"] = np.arange(30) // 10, np.arange(30) % 10, 1, 1
    p = tmp_path / "d.raw"
    with RawWriter(p, height=4, width=16, header={"Date": "2001-01-01 00:00:00"}) as w:
        w.write(ev)
    hdr, got = read_back(p, decode)
    assert np.array_equal(got, ev) and hdr.get("date") == "2001-01-01 00:00:00"
    assert len([k for k in hdr.fields if k.lower() == "date"]) == 1
