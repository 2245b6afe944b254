"""Property tests of the three decoders on random and mutated word streams.

For any words: no crash, no exception, every decoded coordinate inside the geometry, and every
chunking of the input (with tiny output buffers) gives exactly the output of one call.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evstream.io.evt2 import Evt2Decoder
from evstream.io.evt3 import Evt3Decoder
from evstream.io.evt21 import Evt21Decoder

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MAKERS = {
    "evt3": lambda w, h: Evt3Decoder(w, h),
    "evt2": lambda w, h: Evt2Decoder(w, h),
    "evt21": lambda w, h: Evt21Decoder(w, h),
    "evt21_legacy": lambda w, h: Evt21Decoder(w, h, legacy_word_order=True),
}
WORD_DTYPE = {"evt3": "<u2", "evt2": "<u4", "evt21": "<u8", "evt21_legacy": "<u8"}


def check(kind, words, width, height, chunk_sizes, ev_extra, tr_cap, decode):
    whole_dec = MAKERS[kind](width, height)
    whole, wtr = decode(whole_dec, words)
    d = MAKERS[kind](width, height)
    got, gtr = decode(d, words, chunk_sizes, ev_cap=d.max_events_per_word + ev_extra, tr_cap=tr_cap)
    assert np.array_equal(got, whole)
    assert np.array_equal(gtr, wtr)
    assert d.counters == whole_dec.counters
    assert np.array_equal(d.get_state(), whole_dec.get_state())
    if len(whole):
        assert int(whole["x"].max()) < width and int(whole["y"].max()) < height
        assert set(np.unique(whole["p"])) <= {0, 1}
    if len(wtr):
        assert set(np.unique(wtr["p"])) <= {0, 1}
        assert int(wtr["id"].max()) < 32
    c = whole_dec.counters
    assert c["triggers"] == len(wtr)
    assert min(c.values()) >= 0
    return whole


def biased_word(kind):
    """Random words with the type field drawn first, so every type is hit often."""
    bits = {"evt3": 16, "evt2": 32, "evt21": 64, "evt21_legacy": 64}[kind]
    return st.tuples(st.integers(0, 15), st.integers(0, (1 << (bits - 4)) - 1)).map(
        lambda tp: (tp[0] << (bits - 4)) | tp[1])


def to_array(kind, ints):
    arr = np.array(ints, dtype=np.uint64).astype(WORD_DTYPE[kind])
    if kind == "evt21_legacy":
        arr = ((arr << np.uint64(32)) | (arr >> np.uint64(32))).astype("<u8")
    return arr


@pytest.mark.parametrize("kind", list(MAKERS))
@FAST
@given(data=st.data())
def test_random_words(kind, data, decode):
    ints = data.draw(st.lists(biased_word(kind), min_size=0, max_size=300))
    words = to_array(kind, ints)
    width = data.draw(st.integers(1, 2100))
    height = data.draw(st.integers(1, 2100))
    sizes = data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=10))
    check(kind, words, width, height, sizes, data.draw(st.integers(0, 30)),
          data.draw(st.integers(1, 4)), decode)


@pytest.mark.parametrize("name", ["evt3", "evt2_expelliarmus", "evt2_faery"])
@FAST
@given(data=st.data())
def test_mutated_sample_words(name, data, sample_words, decode):
    words, (w, h) = sample_words[name]
    kind = "evt3" if name == "evt3" else "evt2"
    start = data.draw(st.integers(0, len(words) - 1))
    piece = words[start:start + data.draw(st.integers(1, 3000))].copy()
    bits = 16 if kind == "evt3" else 32
    for _ in range(data.draw(st.integers(0, 20))):
        i = data.draw(st.integers(0, len(piece) - 1))
        op = data.draw(st.sampled_from(["random", "flip", "type"]))
        v = int(piece[i])
        if op == "random":
            v = data.draw(st.integers(0, (1 << bits) - 1))
        elif op == "flip":
            v ^= 1 << data.draw(st.integers(0, bits - 1))
        else:
            v = (v & ((1 << (bits - 4)) - 1)) | (data.draw(st.integers(0, 15)) << (bits - 4))
        piece[i] = v
    if data.draw(st.booleans()):
        shrink = (data.draw(st.integers(1, w)), data.draw(st.integers(1, h)))
    else:
        shrink = (w, h)
    sizes = data.draw(st.lists(st.integers(1, 500), min_size=1, max_size=8))
    check(kind, piece, *shrink, sizes, data.draw(st.integers(0, 50)), data.draw(st.integers(1, 3)),
          decode)


@pytest.mark.parametrize("kind", ["evt21", "evt21_legacy"])
@FAST
@given(data=st.data())
def test_evt21_from_mutated_evt2(kind, data, sample_words, decode):
    """EVT 2.0 sample words widened into EVT 2.1 words (random masks), then mutated."""
    words, (w, h) = sample_words["evt2_faery"]
    start = data.draw(st.integers(0, len(words) - 1))
    piece = words[start:start + data.draw(st.integers(1, 1000))].astype(np.uint64)
    masks = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(
        0, 1 << 32, len(piece), dtype=np.uint64)
    wide = (piece << np.uint64(32)) | masks
    ints = [int(v) for v in wide]
    for _ in range(data.draw(st.integers(0, 10))):
        ints[data.draw(st.integers(0, len(ints) - 1))] = data.draw(st.integers(0, (1 << 64) - 1))
    sizes = data.draw(st.lists(st.integers(1, 100), min_size=1, max_size=8))
    check(kind, to_array(kind, ints), w, h, sizes, data.draw(st.integers(0, 64)), 1, decode)
