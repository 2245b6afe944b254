"""RVT's stacked histogram: time bins, channels, the uint8 wrap, ds2_nearest, against hand
cases, a pure-numpy reference of the rules and torch's nearest-exact resize."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evstream.io import EventCD
from evstream.preprocessing.validation import time_edges
from evstream.rvt.representation import rvt_time_bins, stacked_histogram_window


def window(x, y, p, t) -> np.ndarray:
    """An EventCD window from field values (scalars broadcast)."""
    n = len(t)
    ev = np.zeros(n, EventCD)
    for name, v in (("x", x), ("y", y), ("p", p), ("t", t)):
        ev[name] = np.broadcast_to(np.asarray(v), n)
    return ev


def frame(x, y, p, t, h=4, w=6, **kw):
    return stacked_histogram_window(window(x, y, p, t), h, w, **kw)


def reference(x, y, p, t, h, w, cutoff=10, fastmode=True):
    """RVT's rules written directly: float32 bins, uint8 accumulation (wraps), cut-off."""
    out = np.zeros((20, h, w), np.uint8 if fastmode else np.int64)
    if len(t):
        f32 = np.float32
        span = f32(max(int(t[-1]) - int(t[0]), 1))
        b = np.minimum(np.floor((((t - t[0]).astype(f32) / span) * f32(10))).astype(int), 9)
        np.add.at(out, (p.astype(int) * 10 + b, y.astype(int), x.astype(int)), 1)
    return np.minimum(out, cutoff).astype(np.uint8)


def test_time_bins_use_first_and_last_event_of_the_window():
    assert rvt_time_bins(np.array([1000, 1001, 1002])).tolist() == [0, 5, 9]
    assert rvt_time_bins(np.array([7, 7, 7])).tolist() == [0, 0, 0]        # D = 1, all in bin 0
    assert rvt_time_bins(np.array([0, 10, 20, 99, 100])).tolist() == [0, 1, 2, 9, 9]
    # float32 beyond 1e6 µs (COUNT windows): RVT's bin 7 where the exact bin is 6
    assert rvt_time_bins(np.array([0, 3_633_753, 5_191_076])).tolist() == [0, 7, 9]


def test_kernel_fed_times_over_span_would_not_match():
    """Why RVT's frame has its own kernel, not evstream's stacked_histogram fed t - t_first
    over D: with window length D=2 that kernel's float64 rule puts t=1 in bin 4, RVT (and the
    exact rule) in bin 5."""
    edges = time_edges(2.0, 10)
    assert int(np.searchsorted(edges, 1, "right") - 1) == 4
    assert rvt_time_bins(np.array([0, 1, 2])).tolist() == [0, 5, 9]
    out = frame([0, 1, 2], 0, 0, [0, 1, 2])
    assert out[5, 0, 1] == 1 and out[4, 0, 1] == 0


def test_channels_polarity_major():
    out = frame([0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 0, 1], [0, 0, 100, 100])
    assert out[0, 0, 0] == 1 and out[10, 1, 1] == 1          # oldest bin: OFF ch 0, ON ch 10
    assert out[9, 2, 2] == 1 and out[19, 3, 3] == 1          # newest bin: OFF ch 9, ON ch 19
    assert out.sum() == 4 and out.dtype == np.uint8 and out.shape == (20, 4, 6)


@pytest.mark.parametrize("count,fast,expected", [(10, True, 10), (255, True, 10), (256, True, 0),
                                                 (258, True, 2), (266, True, 10), (9, True, 9),
                                                 (258, False, 10), (65_539, True, 3)])
def test_more_than_255_events_in_one_bin_wrap(count, fast, expected):
    t = np.zeros(count, np.int64)          # all in bin 0 of pixel (1, 2)
    out = frame(2, 1, 1, t, fastmode=fast)
    assert out[10, 1, 2] == expected
    assert out.sum() == expected


def test_unsorted_window_is_refused():
    from evstream.errors import ArgumentError

    with pytest.raises(ArgumentError, match="1 event.*non-decreasing"):
        frame([0, 1, 2], 0, 0, [0, 10, 5])


def test_empty_window_is_zero():
    assert frame([], [], [], []).sum() == 0


def test_out_of_sensor_events_dropped_with_warning():
    with pytest.warns(RuntimeWarning, match="1 event"):
        out = frame([0, 6], [0, 0], [1, 1], [0, 5])
    assert out.sum() == 1


def test_against_numpy_reference_random_windows():
    rng = np.random.default_rng(0)
    for n, span in ((1, 0), (500, 50_000), (3000, 7), (2000, 5_191_076)):
        x = rng.integers(0, 6, n).astype(np.uint16)
        y = rng.integers(0, 4, n).astype(np.uint16)
        p = rng.integers(0, 2, n).astype(np.int16)
        t = np.sort(rng.integers(0, span + 1, n)).astype(np.int64)
        for fast in (True, False):
            got = stacked_histogram_window(window(x, y, p, t), 4, 6, fastmode=fast)
            assert np.array_equal(got, reference(x, y, p, t, 4, 6, fastmode=fast))


def test_ds2_nearest_keeps_odd_pixels_only():
    # probes: (x, y) = (1, 1) -> (0, 0); (3, 5) -> (1, 2); any even x or even y is discarded
    x = [1, 3, 0, 2, 1, 4, 5]
    y = [1, 5, 1, 3, 0, 4, 5]
    out = frame(x, y, 1, [0, 10, 20, 30, 40, 50, 60], h=6, w=8, downsample_by_2=True)
    assert out.shape == (20, 3, 4)
    nz = {(int(c), int(i), int(j)) for c, i, j in zip(*np.nonzero(out))}
    # bins from the full window (0..60 µs): t=0 -> 0, t=10 -> 1, t=60 -> 9
    assert nz == {(10, 0, 0), (11, 2, 1), (19, 2, 2)}


def test_ds2_equals_torch_nearest_exact_of_full_frame():
    rng = np.random.default_rng(1)
    n = 4000
    x = rng.integers(0, 14, n).astype(np.uint16)
    y = rng.integers(0, 10, n).astype(np.uint16)
    p = rng.integers(0, 2, n).astype(np.int16)
    t = np.sort(rng.integers(0, 50_000, n)).astype(np.int64)
    full = stacked_histogram_window(window(x, y, p, t), 10, 14)
    resized = F.interpolate(torch.from_numpy(full)[None], scale_factor=0.5,
                            mode="nearest-exact")[0].numpy()
    half = stacked_histogram_window(window(x, y, p, t), 10, 14, downsample_by_2=True)
    assert np.array_equal(half, resized)
    assert np.array_equal(half, full[:, 1::2, 1::2])


def test_ds2_wrap_on_odd_pixel_even_pixel_ignored():
    n_odd, n_even = 258, 300
    x = np.r_[np.full(n_odd, 3), np.full(n_even, 2)]
    y = np.r_[np.full(n_odd, 1), np.full(n_even, 1)]
    out = frame(x, y, 0, np.zeros(n_odd + n_even, np.int64), h=4, w=6, downsample_by_2=True)
    assert out[0, 0, 1] == 2 and out.sum() == 2              # 258 mod 256; pixel x=2 discarded


def test_strided_output_is_filled():
    target = np.zeros((20, 4, 12), np.uint8)[:, :, ::2]
    frame([1], [2], [1], [0], out=target)
    assert target[10, 2, 1] == 1 and target.sum() == 1


def test_float32_bin_in_the_frame_for_long_windows():
    out = frame([0, 1, 2], 0, 0, [0, 3_633_753, 5_191_076])
    assert out[7, 0, 1] == 1 and out[6, 0, 1] == 0 and out[9, 0, 2] == 1
