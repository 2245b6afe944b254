"""Kernels on extreme arguments (issue 12, item 7): one EventArrayError at the boundary, never a
hang, a ZeroDivisionError, an OverflowError or a numba TypingError."""

from __future__ import annotations

import numpy as np
import pytest

from evstream.errors import EventArrayError, EvstreamError
from evstream.io import EventCD
from evstream.preprocessing import kernels, torch_kernels

FUNCTIONS = ["histo", "diff", "event_cube", "timesurface", "stacked_histogram", "voxel_grid",
             "histo_quantized", "diff_quantized", "multi_channel_timesurface"]
CHANNELS = {"diff": 1, "diff_quantized": 1, "event_cube": 6, "stacked_histogram": 4,
            "voxel_grid": 3, "multi_channel_timesurface": 4}


def events(n=5):
    ev = np.zeros(n, EventCD)
    ev["t"] = np.arange(n) * 10
    ev["x"] = np.arange(n) % 4
    ev["y"] = 1
    ev["p"] = np.arange(n) % 2
    return ev


def output(name, dtype=np.float32):
    return np.zeros((2, CHANNELS.get(name, 2), 3, 4), dtype)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("total", [1e300, 5e-324, 1e20, 2.0 ** 63, float("nan"), float("inf"),
                                   -50.0, 0, 0.5, "fifty", None, True])
def test_window_length_is_checked_once(name, total):
    """Before: 1e300 never returned (time-edge loop), 5e-324 ZeroDivisionError, 1e20
    OverflowError, event_cube overflowed at 2**63."""
    with pytest.raises(EventArrayError, match="total_tbins_delta_t"):
        getattr(kernels, name)(events(), output(name), total)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_largest_window_still_works(name):
    out = output(name)
    dropped = getattr(kernels, name)(events(), out, 2 ** 62)
    assert dropped == 0 and np.isfinite(out).all() and out.any()


def test_largest_window_histo_values():
    out = output("histo")
    kernels.histo(events(), out, 2 ** 62, max_incr_per_pixel=4)
    expected = np.zeros_like(out)              # every event (t <= 40) in the first bin
    for e in events():
        expected[0, e["p"], e["y"], e["x"]] += 0.25
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", ["histo", "event_cube", "voxel_grid"])
def test_torch_kernels_check_the_window_too(name):
    import torch
    with pytest.raises(EventArrayError, match="total_tbins_delta_t"):
        getattr(torch_kernels, name)(events(), torch.zeros(output(name).shape), 1e300)


def test_event_field_of_the_wrong_shape():
    """Before: a numba TypingError."""
    dtype = np.dtype([("x", "<u2", (2,)), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])
    ev = np.zeros(3, dtype)
    with pytest.raises(EventArrayError, match="field 'x' must hold one value per event"):
        kernels.histo(ev, output("histo"), 100)


@pytest.mark.parametrize("cutoff", [float("nan"), float("inf"), -1, "10", True])
def test_count_cutoff_is_checked(cutoff):
    """Before: nan -> ValueError, inf -> OverflowError."""
    with pytest.raises(EventArrayError, match="count_cutoff"):
        kernels.stacked_histogram(events(), output("stacked_histogram", np.uint8), 100,
                                  count_cutoff=cutoff)


def test_count_cutoff_none_and_float_still_work():
    out = output("stacked_histogram", np.uint8)
    ev = np.zeros(30, EventCD)                 # 30 ON events on one pixel, first micro-bin
    ev["p"] = 1
    kernels.stacked_histogram(ev, out, 100, count_cutoff=None)
    assert out[0, 2, 0, 0] == 30
    kernels.stacked_histogram(ev, out, 100, count_cutoff=7.0)
    assert out[0, 2, 0, 0] == 7 and out.sum() == 7


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1, "5"])
def test_max_incr_per_pixel_is_checked(value):
    with pytest.raises(EventArrayError, match="max_incr_per_pixel"):
        kernels.histo(events(), output("histo"), 100, max_incr_per_pixel=value)


@pytest.mark.parametrize("kwargs", [{"negative_bit_length": float("nan")},
                                    {"negative_bit_length": 2.5},
                                    {"total_bit_length": float("inf")}])
def test_quantized_bit_lengths_are_checked(kwargs):
    with pytest.raises(EvstreamError, match="bit_length"):
        kernels.histo_quantized(events(), output("histo_quantized", np.uint8), 100, **kwargs)
