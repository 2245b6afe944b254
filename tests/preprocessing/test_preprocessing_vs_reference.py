"""Every function against its slow pure-Python reference on random events, across shapes, T,
downsampling factors and kwargs (including out-of-range events, unsorted arrays and reset=False)."""

import numpy as np
import pytest

from evstream.preprocessing import kernels as K

import preprocessing_reference as R

SHAPES = [(1, 1), (5, 7), (12, 20)]


def _case(seed, k, shape, total, n=400, sort=True, out_of_range=0.1):
    rng = np.random.default_rng(seed)
    h, w = shape
    ev = R.make_events(rng, n, w << k, h << k, total, sort=sort, out_of_range=out_of_range)
    return rng, ev


def _run(fn, ref, ev, out, total, *args, exact=True, **kw):
    start = out.copy()
    want, want_dropped = ref(ev, start, total, *args, **kw)
    dropped = fn(ev, out, total, *args, **kw)
    assert dropped == want_dropped
    if exact:
        np.testing.assert_array_equal(out, want)
    else:
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("n_t,total", [(1, 1000), (3, 3000), (4, 1001)])
@pytest.mark.parametrize("max_incr", [5, 2.5, None])
def test_histo_diff(shape, k, n_t, total, max_incr):
    rng, ev = _case(hash((shape, k, n_t)) % 1000, k, shape, total)
    h, w = shape
    _run(K.histo, R.ref_histo, ev, np.zeros((n_t, 2, h, w), np.float32), total, k, True, max_incr)
    _run(K.diff, R.ref_diff, ev, np.zeros((n_t, 1, h, w), np.float32), total, k, True, max_incr)
    # reset=False continues from existing content; float64 outputs
    start = rng.uniform(-1, 1, (n_t, 1, h, w))
    _run(K.diff, R.ref_diff, ev, start.copy(), total, k, False, max_incr)
    _run(K.histo, R.ref_histo, ev, np.abs(rng.uniform(0, 1, (n_t, 2, h, w))), total, k, False, max_incr)


@pytest.mark.parametrize("sort", [True, False])
def test_histo_diff_unsorted_and_noninteger_dt(sort):
    for seed, total, n_t in [(1, 1000, 3), (2, 999, 7), (3, 10, 3), (4, 50000, 10)]:
        _, ev = _case(seed, 0, (6, 9), total, n=600, sort=sort)
        _run(K.histo, R.ref_histo, ev, np.zeros((n_t, 2, 6, 9), np.float32), total, 0, True, 3)
        _run(K.diff, R.ref_diff, ev, np.zeros((n_t, 1, 6, 9), np.float32), total, 0, True, 3)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("normalization", [False, True])
def test_quantized(shape, k, normalization):
    rng, ev = _case(7 + k, k, shape, 2000, n=700)
    h, w = shape
    ev = np.concatenate([ev, np.repeat(ev[:3], 200)])  # hot pixels to hit the clamps
    ev = ev[np.argsort(ev["t"], kind="stable")]
    float_out = normalization or k > 0
    for nb in (2, 4, 8):
        dtype = np.float32 if float_out else np.int8
        want, dropped = R.ref_quantized(ev, np.zeros((3, 1, h, w), dtype), 2000, k, True, signed=True, nb=nb,
                                        normalization=normalization)
        out = np.full((3, 1, h, w), 9, dtype)
        assert K.diff_quantized(ev, out, 2000, k, True, nb, normalization) == dropped
        np.testing.assert_array_equal(out, want)
    for nb, tb in ((4, 8), (2, 5), (3, 4)):
        dtype = np.float32 if float_out else np.uint8
        want, dropped = R.ref_quantized(ev, np.zeros((3, 2, h, w), dtype), 2000, k, True, signed=False, nb=nb,
                                        tb=tb, normalization=normalization)
        out = np.zeros((3, 2, h, w), dtype)
        assert K.histo_quantized(ev, out, 2000, k, True, nb, tb, normalization) == dropped
        np.testing.assert_array_equal(out, want)


def test_quantized_reset_false_adds_or_continues():
    rng, ev = _case(3, 1, (4, 4), 1000, n=300)
    start = rng.uniform(0, 2, (2, 1, 4, 4)).astype(np.float32)
    want, _ = R.ref_quantized(ev, start, 1000, 1, False, signed=True, nb=8)
    out = start.copy()
    K.diff_quantized(ev, out, 1000, 1, False)
    np.testing.assert_array_equal(out, want)
    # direct mode (k=0, integer): counts continue from the existing content, with the clamp
    _, ev0 = _case(4, 0, (2, 2), 1000, n=200, out_of_range=0)
    out = np.full((1, 1, 2, 2), 120, np.int8)
    K.diff_quantized(ev0[ev0["p"] == 1], out, 1000, 0, False)
    assert out.max() == 127


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("n_t,n_c,split,total", [(1, 2, True, 1000), (3, 6, True, 3001), (2, 10, True, 777),
                                                   (3, 3, False, 999), (1, 4, False, 1000)])
def test_event_cube(shape, k, n_t, n_c, split, total):
    rng, ev = _case(n_c + k, k, shape, total, n=500, sort=bool(k % 2))
    h, w = shape
    for max_incr in (5, 255 / 4, 0.5):
        _run(K.event_cube, R.ref_event_cube, ev, np.zeros((n_t, n_c, h, w), np.float32), total, k, True, split,
             max_incr)
    _run(K.event_cube, R.ref_event_cube, ev, rng.uniform(-1, 1, (n_t, n_c, h, w)), total, k, False, split, 0.7)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [0, 1])
@pytest.mark.parametrize("n_t,n_c,total", [(1, 2, 1000), (3, 2, 3000), (2, 6, 1000), (3, 4, 997)])
@pytest.mark.parametrize("sort", [True, False])
def test_timesurfaces(shape, k, n_t, n_c, total, sort):
    _, ev = _case(n_t * n_c + k, k, shape, total, sort=sort)
    h, w = shape
    fn = K.timesurface if n_c == 2 else K.multi_channel_timesurface
    _run(fn, R.ref_timesurface, ev, np.zeros((n_t, n_c, h, w), np.float32), total, k, True)
    _run(fn, R.ref_timesurface, ev, np.ones((n_t, n_c, h, w), np.float64), total, k, False, False)
    _run(fn, R.ref_timesurface, ev, np.zeros((n_t, n_c, h, w), np.int32), total, k, True, False)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("n_t,n_c,total", [(1, 20, 50000), (2, 4, 1000), (3, 2, 1001)])
@pytest.mark.parametrize("cutoff", [10, 3, None, 1000])
def test_stacked_histogram(shape, k, n_t, n_c, total, cutoff):
    _, ev = _case(n_c + k, k, shape, total, n=800, sort=k != 1)
    h, w = shape
    for dtype in (np.uint8, np.int16, np.float32):
        _run(K.stacked_histogram, R.ref_stacked_histogram, ev, np.zeros((n_t, n_c, h, w), dtype), total, k, True,
             cutoff)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("n_t,n_c,total", [(1, 5, 50000), (2, 1, 1000), (3, 9, 1001), (2, 2, 10)])
def test_voxel_grid(shape, k, n_t, n_c, total):
    rng, ev = _case(n_c + 10 * k, k, shape, total, n=500, sort=k != 2)
    h, w = shape
    _run(K.voxel_grid, R.ref_voxel_grid, ev, np.zeros((n_t, n_c, h, w), np.float32), total, k, True, exact=False)
    _run(K.voxel_grid, R.ref_voxel_grid, ev, rng.normal(size=(n_t, n_c, h, w)), total, k, False, exact=False)
