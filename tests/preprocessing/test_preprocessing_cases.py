"""Hand-computed tiny cases and conservation checks for each function."""

import numpy as np
import pytest

from evstream.io.dtypes import EventCD
from evstream.preprocessing import kernels as K


def ev(*rows):
    """rows of (x, y, p, t)."""
    a = np.zeros(len(rows), EventCD)
    for i, (x, y, p, t) in enumerate(rows):
        a[i] = (x, y, p, t)
    return a


def test_histo_two_events_one_pixel_and_bin_edge():
    out = np.zeros((2, 2, 2, 3), np.float32)
    # T=2, total=100 -> dt=50; t=49 -> bin 0, t=50 (exactly on the edge) -> bin 1
    K.histo(ev((1, 0, 1, 10), (1, 0, 1, 49), (2, 1, 0, 50), (2, 1, 0, 99)), out, 100, max_incr_per_pixel=4)
    assert out[0, 1, 0, 1] == np.float32(0.5)
    assert out[1, 0, 1, 2] == np.float32(0.5)
    assert out.sum() == pytest.approx(1.0)


def test_histo_saturates_at_one_and_downsampling_increment():
    out = np.zeros((1, 2, 1, 1), np.float32)
    K.histo(ev(*[(0, 0, 1, 0)] * 7), out, 10, max_incr_per_pixel=5)
    assert out[0, 1, 0, 0] == 1.0
    out = np.zeros((1, 2, 1, 1), np.float32)
    # k=1: 4 sensor pixels pool into one cell, inc = 1 / (2 * 4)
    K.histo(ev((0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (1, 1, 0, 0)), out, 10, 1, max_incr_per_pixel=2)
    assert out[0, 0, 0, 0] == np.float32(0.5)


def test_histo_matches_original_rounding():
    # the original adds in float64 and rounds to float32 after each event
    out = np.zeros((1, 2, 1, 1), np.float32)
    K.histo(ev(*[(0, 0, 1, 0)] * 3), out, 10)
    v = np.float32(0)
    for _ in range(3):
        v = np.float32(float(v) + 0.2)
    assert out[0, 1, 0, 0] == v


def test_diff_order_dependent_clamp():
    on, off = (0, 0, 1, 0), (0, 0, 0, 0)
    out = np.zeros((1, 1, 1, 1), np.float32)
    K.diff(ev(*[on] * 6, *[off] * 2), out, 10, max_incr_per_pixel=4)  # 1 (clamped) - 0.5
    assert out[0, 0, 0, 0] == 0.5
    K.diff(ev(*[off] * 2, *[on] * 6), out, 10, max_incr_per_pixel=4)  # -0.5 + 1.5 -> 1
    assert out[0, 0, 0, 0] == 1.0
    K.diff(ev(*[off] * 9), out, 10, max_incr_per_pixel=4)
    assert out[0, 0, 0, 0] == -1.0


def test_quantized_hand_cases():
    on, off = (0, 0, 1, 0), (0, 0, 0, 0)
    out = np.zeros((1, 1, 1, 1), np.int8)
    K.diff_quantized(ev(*[on] * 3, off), out, 10, negative_bit_length=2)  # clamp to [-2, 1]: 1, 1, 1, 0
    assert out[0, 0, 0, 0] == 0
    out = np.zeros((1, 2, 1, 1), np.uint8)
    K.histo_quantized(ev(*[on] * 30, *[off] * 30), out, 10, negative_bit_length=3, total_bit_length=5)
    assert out[0, 0, 0, 0] == 7 and out[0, 1, 0, 0] == 3
    out = np.zeros((1, 2, 1, 1), np.float32)
    K.histo_quantized(ev(*[on] * 2, off), out, 10, negative_bit_length=3, total_bit_length=5, normalization=True)
    np.testing.assert_array_equal(out[0, :, 0, 0], np.float32([1 / 7, 2 / 7]))
    # k=1 pooling: 3 ON events in one 2x2 block -> 3 / 4
    out = np.zeros((1, 1, 1, 1), np.float32)
    K.diff_quantized(ev((0, 0, 1, 0), (1, 0, 1, 0), (1, 1, 1, 0)), out, 10, 1)
    assert out[0, 0, 0, 0] == 0.75


def test_event_cube_hand_case():
    # T=1, C=2 split: nbins=1; t=50 of 100 -> s=0, l=0, wl=1: all weight to micro-bin 0, ON channel
    out = np.zeros((1, 2, 1, 1), np.float32)
    K.event_cube(ev((0, 0, 1, 50)), out, 100, max_incr_per_pixel=1)
    assert out[0, 1, 0, 0] == 1.0 and out[0, 0, 0, 0] == 0
    # T=1, C=4 split: nbins=2; t=50 of 100 -> s=0.5, l=0: half to micro-bin 0, half to 1 (OFF channels 0, 2)
    out = np.zeros((1, 4, 1, 1), np.float32)
    K.event_cube(ev((0, 0, 0, 50)), out, 100, max_incr_per_pixel=1)
    np.testing.assert_array_equal(out[0, :, 0, 0], [0.5, 0, 0.5, 0])
    # not split, T=2, C=1: nbins=2; t=0 -> s=-0.5 -> half the weight lost; OFF is negative
    out = np.zeros((2, 1, 1, 1), np.float32)
    K.event_cube(ev((0, 0, 0, 0)), out, 100, split_polarity=False, max_incr_per_pixel=1)
    np.testing.assert_array_equal(out[:, 0, 0, 0], [-0.5, 0])


def test_timesurface_hand_case_last_event_wins():
    out = np.zeros((2, 2, 1, 1), np.float32)
    K.timesurface(ev((0, 0, 1, 10), (0, 0, 1, 30), (0, 0, 0, 75)), out, 100)
    assert out[0, 1, 0, 0] == np.float32(30 / 50) and out[1, 0, 0, 0] == np.float32(25 / 50)
    # unsorted: the last event of the array wins
    K.timesurface(ev((0, 0, 1, 30), (0, 0, 1, 10)), out, 100)
    assert out[0, 1, 0, 0] == np.float32(10 / 50)
    mct = np.zeros((1, 4, 1, 1), np.float32)  # 2 micro-bins of 50
    K.multi_channel_timesurface(ev((0, 0, 0, 60)), mct, 100)
    assert mct[0, 2, 0, 0] == np.float32(10 / 50)


def test_stacked_histogram_hand_case():
    out = np.zeros((1, 4, 1, 2), np.uint8)  # nb=2 micro-bins of 50
    K.stacked_histogram(ev(*[(1, 0, 1, 99)] * 12, (0, 0, 0, 0), (0, 0, 0, 50)), out, 100)
    assert out[0, 3, 0, 1] == 10  # ON, micro-bin 1, cut off at 10
    assert out[0, 0, 0, 0] == 1 and out[0, 1, 0, 0] == 1


def test_voxel_grid_hand_case():
    out = np.zeros((1, 3, 1, 1), np.float32)
    # dt = 100, C = 3: ts = t * 2 / 100; t = 25 -> ts = 0.5; OFF
    K.voxel_grid(ev((0, 0, 0, 25), (0, 0, 1, 50)), out, 100)
    np.testing.assert_array_equal(out[0, :, 0, 0], [-0.5, 0.5, 0])


def test_conservation_histo_counts_per_polarity():
    rng = np.random.default_rng(0)
    n = 5000
    e = np.zeros(n, EventCD)
    e["x"], e["y"] = rng.integers(0, 40, n), rng.integers(0, 30, n)
    e["p"], e["t"] = rng.integers(0, 2, n), np.sort(rng.integers(0, 10000, n))
    out = np.zeros((4, 2, 30, 40), np.float64)
    K.histo(e, out, 10000, max_incr_per_pixel=1e6)
    for pol in (0, 1):
        assert out[:, pol].sum() * 1e6 == pytest.approx((e["p"] == pol).sum(), rel=1e-9)
    out1 = np.zeros((4, 1, 30, 40), np.float64)
    K.diff(e, out1, 10000, max_incr_per_pixel=1e6)
    assert out1.sum() * 1e6 == pytest.approx((e["p"] == 1).sum() - (e["p"] == 0).sum(), abs=1e-6)
    q = np.zeros((4, 2, 30, 40), np.int32)
    K.histo_quantized(e, q, 10000, negative_bit_length=15, total_bit_length=30)
    assert q[:, 1].sum() == (e["p"] == 1).sum()
    s = np.zeros((4, 20, 30, 40), np.int32)
    K.stacked_histogram(e, s, 10000, count_cutoff=None)
    assert s[:, 10:].sum() == (e["p"] == 1).sum() and s.sum() == n
    v = np.zeros((4, 5, 30, 40), np.float64)
    K.voxel_grid(e, v, 10000)
    bins = e["t"] // 2500
    for b in range(4):
        sel = bins == b
        assert v[b].sum() == pytest.approx((e["p"][sel] == 1).sum() - (e["p"][sel] == 0).sum(), abs=1e-6)
    # event cube: events away from the first/last half micro-bin keep their whole weight
    c = np.zeros((4, 6, 30, 40), np.float64)
    inner = e[(e["t"] >= 500) & (e["t"] < 9500)]
    K.event_cube(inner, c, 10000, max_incr_per_pixel=1e6)
    assert c.sum() * 1e6 == pytest.approx(len(inner), rel=1e-9)
