"""Bounds safety, the out-of-range policy, degenerate inputs and dtype rules."""

import warnings

import numpy as np
import pytest

from evstream.errors import EventArrayError, EvstreamError
from evstream.io.dtypes import EventCD
from evstream.preprocessing import kernels as K

# name -> (channels, good dtype, extra kwargs)
FUNCS = {
    "histo": (2, np.float32, {}), "diff": (1, np.float32, {}), "histo_quantized": (2, np.uint8, {}),
    "diff_quantized": (1, np.int8, {}), "event_cube": (6, np.float32, {}), "timesurface": (2, np.float32, {}),
    "multi_channel_timesurface": (6, np.float32, {}), "stacked_histogram": (20, np.uint8, {}),
    "voxel_grid": (5, np.float32, {}),
}


def ev(*rows):
    a = np.zeros(len(rows), EventCD)
    for i, r in enumerate(rows):
        a[i] = r
    return a


BAD = ev((4, 0, 1, 5), (0, 3, 1, 5), (0, 0, 1, -1), (0, 0, 1, 100), (65535, 65535, 0, 2 ** 62), (1, 1, 1, 7))


@pytest.mark.parametrize("name", FUNCS)
def test_out_of_range_dropped_counted_and_never_written(name):
    c, dtype, kw = FUNCS[name]
    fn = getattr(K, name)
    big = np.zeros((3, c, 5, 6), dtype)  # guard band around the real output
    out = big[1:2, :, 1:4, 1:5]           # a non-contiguous [1, C, 3, 4] view
    assert fn(BAD, out, 100, **kw) == 5
    assert out.any()
    mask = np.ones(big.shape, bool)
    mask[1:2, :, 1:4, 1:5] = False
    assert not big[mask].any()
    with pytest.warns(RuntimeWarning, match="dropped 5"):
        fn(BAD, out, 100, on_out_of_range="warn", **kw)
    before = out.copy()
    with pytest.raises(EventArrayError, match="first at index 0"):
        fn(BAD, out, 100, on_out_of_range="raise", **kw)
    np.testing.assert_array_equal(out, before)  # untouched when raising
    with pytest.raises(EventArrayError):
        fn(BAD, out, 100, on_out_of_range="ignore", **kw)


@pytest.mark.parametrize("name", FUNCS)
def test_empty_and_single_event(name):
    c, dtype, kw = FUNCS[name]
    fn = getattr(K, name)
    out = np.ones((2, c, 3, 4), dtype)
    assert fn(np.zeros(0, EventCD), out, 100, **kw) == 0
    assert not out.any()  # reset
    out[...] = 1
    fn(np.zeros(0, EventCD), out, 100, reset=False, **kw)
    assert (out == 1).all()
    out[...] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fn(ev((3, 2, 1, 60)), out, 100, on_out_of_range="warn", **kw) == 0
    assert np.count_nonzero(out) >= 1
    touched = np.argwhere(out)
    assert (touched[:, 2] == 2).all() and (touched[:, 3] == 3).all()


@pytest.mark.parametrize("name", FUNCS)
def test_bad_shapes_and_args(name):
    c, dtype, kw = FUNCS[name]
    fn = getattr(K, name)
    e = ev((0, 0, 1, 1))
    with pytest.raises(EventArrayError, match="T, C, H, W"):
        fn(e, np.zeros((c, 3, 4), dtype), 100, **kw)
    if name != "voxel_grid":  # any channel count is a valid voxel grid
        with pytest.raises(EventArrayError, match="channel"):
            fn(e, np.zeros((1, c + 1, 3, 4), dtype), 100, **kw)
    with pytest.raises(EventArrayError, match="total_tbins_delta_t"):
        fn(e, np.zeros((1, c, 3, 4), dtype), 0, **kw)
    with pytest.raises(EventArrayError, match="downsampling_factor"):
        fn(e, np.zeros((1, c, 3, 4), dtype), 100, -1, **kw)
    with pytest.raises(EventArrayError, match="structured"):
        fn(np.zeros((3, 4)), np.zeros((1, c, 3, 4), dtype), 100, **kw)
    with pytest.raises(EventArrayError, match="lack"):
        fn(np.zeros(2, [("x", "u2"), ("y", "u2"), ("t", "i8")]), np.zeros((1, c, 3, 4), dtype), 100, **kw)
    with pytest.raises(EventArrayError, match="numpy array"):
        fn(e, [[[[0.0]]]], 100, **kw)
    with pytest.raises(EventArrayError, match="read-only"):
        ro = np.zeros((1, c, 3, 4), dtype)
        ro.flags.writeable = False
        fn(e, ro, 100, **kw)
    with pytest.raises(TypeError):
        fn(e, np.zeros((1, c, 3, 4), dtype), 100, not_a_kwarg=1)


def test_error_family():
    with pytest.raises(EvstreamError):
        K.histo(ev((0, 0, 1, 1)), np.zeros((1, 2, 1, 1), np.uint8), 10)
    with pytest.raises(ValueError):
        K.histo(ev((0, 0, 1, 1)), np.zeros((1, 2, 1, 1), np.uint8), 10)


@pytest.mark.parametrize("name,dtype,kw,ok", [
    ("histo", np.uint8, {}, False),                              # fractional increments
    ("histo", np.uint8, {"max_incr_per_pixel": None}, True),     # inc = 1: binary map
    ("histo", np.float16, {}, False),
    ("histo", np.float64, {}, True),
    ("diff", np.uint8, {"max_incr_per_pixel": None}, False),     # unsigned cannot hold -1
    ("diff", np.int16, {"max_incr_per_pixel": None}, True),
    ("diff", np.int16, {}, False),
    ("event_cube", np.int32, {}, False),
    ("timesurface", np.int32, {}, False),                        # normed values need a float
    ("timesurface", np.int32, {"normed": False}, True),
    ("timesurface", np.int16, {"normed": False}, False),
    ("voxel_grid", np.int16, {}, False),
    ("stacked_histogram", np.float32, {}, True),
    ("diff_quantized", np.uint8, {}, False),
    ("diff_quantized", np.float32, {}, True),
    ("diff_quantized", np.int8, {"normalization": True}, False),
    ("histo_quantized", np.int8, {"negative_bit_length": 4, "total_bit_length": 12}, False),  # 255 > 127
    ("histo_quantized", np.uint8, {"normalization": True}, False),
])
def test_int_vs_float_outputs(name, dtype, kw, ok):
    c = FUNCS[name][0]
    out = np.zeros((1, c, 2, 2), dtype)
    call = lambda: getattr(K, name)(ev((1, 1, 1, 3), (1, 1, 0, 4)), out, 10, **kw)  # noqa: E731
    if ok:
        call()
        assert out.any() or "diff" in name  # ON then OFF cancel in a diff
    else:
        with pytest.raises(EventArrayError, match="dtype"):
            call()


@pytest.mark.parametrize("name", ["histo_quantized", "diff_quantized"])
def test_quantized_downsampling_needs_float(name):
    c, dtype, _ = FUNCS[name]
    with pytest.raises(EventArrayError, match="downsampling"):
        getattr(K, name)(ev((1, 1, 1, 3)), np.zeros((1, c, 2, 2), dtype), 10, 1)
    out = np.zeros((1, c, 2, 2), np.float32)
    getattr(K, name)(ev((1, 1, 1, 3)), out, 10, 1)
    assert out.max() == 0.25


def test_unsorted_input_is_binned_per_event():
    rows = [(0, 0, 1, 90), (0, 0, 1, 10), (1, 0, 0, 60), (1, 0, 0, 5)]
    a, b = np.zeros((2, 2, 1, 2), np.float32), np.zeros((2, 2, 1, 2), np.float32)
    K.histo(ev(*rows), a, 100)
    K.histo(ev(*sorted(rows, key=lambda r: r[3])), b, 100)
    np.testing.assert_array_equal(a, b)
    assert a[0, 1, 0, 0] > 0 and a[1, 1, 0, 0] > 0  # t=10 stays in bin 0 after t=90


def test_include_end_and_non_structured_dtypes():
    out = np.zeros((2, 2, 1, 1), np.float32)
    assert K.histo(ev((0, 0, 1, 100)), out, 100) == 1
    assert K.histo(ev((0, 0, 1, 100)), out, 100, include_end=True) == 0
    assert out[1, 1, 0, 0] > 0
    # other integer field dtypes are converted; float fields are refused
    e = np.zeros(2, [("t", "<u4"), ("x", "<i4"), ("y", "<i4"), ("p", "u1")])
    e["x"], e["t"], e["p"] = [0, 0], [0, 60], [1, 0]
    K.histo(e, out, 100)
    assert out[0, 1, 0, 0] > 0 and out[1, 0, 0, 0] > 0
    with pytest.raises(EventArrayError, match="integer"):
        K.histo(np.zeros(1, [("x", "f4"), ("y", "u2"), ("p", "i2"), ("t", "i8")]), out, 100)
    with pytest.raises(EventArrayError, match="65535"):
        K.histo(np.full(1, -1, [("x", "i4"), ("y", "i4"), ("p", "i2"), ("t", "i8")]), out, 100)


def test_polarity_conventions():
    a, b = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32)
    K.diff(ev((0, 0, -1, 0), (0, 0, -1, 1)), a, 10)
    K.diff(ev((0, 0, 0, 0), (0, 0, 0, 1)), b, 10)
    np.testing.assert_array_equal(a, b)
