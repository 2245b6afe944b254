"""The torch path gives the same numbers as the numba kernels (bit for bit), on CPU torch."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from evstream.errors import EventArrayError  # noqa: E402
from evstream.io.dtypes import EventCD  # noqa: E402
from evstream.preprocessing import kernels as K  # noqa: E402
from evstream.preprocessing import torch_kernels as TK  # noqa: E402

import preprocessing_reference as R  # noqa: E402

CASES = [  # name, channels, numpy dtype, kwargs
    ("histo", 2, np.float32, {}), ("histo", 2, np.float64, {"max_incr_per_pixel": 1.5}),
    ("histo", 2, np.uint8, {"max_incr_per_pixel": None}),
    ("diff", 1, np.float32, {}), ("diff", 1, np.float32, {"max_incr_per_pixel": 2}),
    ("diff", 1, np.int16, {"max_incr_per_pixel": None}),
    ("event_cube", 6, np.float32, {}), ("event_cube", 10, np.float32, {"max_incr_per_pixel": 255 / 4}),
    ("event_cube", 3, np.float64, {"split_polarity": False, "max_incr_per_pixel": 1}),
    ("stacked_histogram", 20, np.uint8, {}), ("stacked_histogram", 4, np.float32, {"count_cutoff": None}),
    ("stacked_histogram", 6, np.int16, {"count_cutoff": 3}),
    ("voxel_grid", 5, np.float32, {}), ("voxel_grid", 1, np.float64, {}),
]


def _events(seed, w, h, total, n=2000, sort=True):
    rng = np.random.default_rng(seed)
    ev = R.make_events(rng, n, w, h, total, sort=sort, out_of_range=0.05)
    hot = np.repeat(ev[:5], 40)  # hot pixels: many contributions per cell
    ev = np.concatenate([ev, hot])
    return rng, (ev[np.argsort(ev["t"], kind="stable")] if sort else rng.permutation(ev))


@pytest.mark.parametrize("name,c,dtype,kw", CASES)
@pytest.mark.parametrize("k,n_t,total,sort", [(0, 1, 50000, True), (1, 3, 3001, False), (2, 2, 999, True)])
def test_torch_equals_numba(name, c, dtype, kw, k, n_t, total, sort):
    h, w = 6, 10
    rng, ev = _events(c * 7 + k, w << k, h << k, total, sort=sort)
    out = np.zeros((n_t, c, h, w), dtype)
    dropped = getattr(K, name)(ev, out, total, k, **kw)
    t_out = torch.zeros(out.shape, dtype=torch.from_numpy(out).dtype)
    assert getattr(TK, name)(ev, t_out, total, k, **kw) == dropped
    np.testing.assert_array_equal(t_out.numpy(), out)
    # reset=False on existing, non-zero content
    if dtype != np.uint8 or name == "stacked_histogram":
        start = rng.integers(0, 3, out.shape).astype(dtype) if out.dtype.kind in "iu" else \
            rng.uniform(-1 if name != "histo" else 0, 1, out.shape).astype(dtype)
        a, b = start.copy(), torch.from_numpy(start.copy())
        getattr(K, name)(ev, a, total, k, False, **kw)
        getattr(TK, name)(ev, b, total, k, False, **kw)
        np.testing.assert_array_equal(b.numpy(), a)


def test_torch_events_input_forms_and_noncontiguous_output():
    _, ev = _events(3, 8, 8, 1000)
    want = np.zeros((2, 2, 8, 8), np.float32)
    K.histo(ev, want, 1000)
    big = torch.zeros(2, 4, 8, 8)
    view = big[:, ::2]  # non-contiguous
    TK.histo(TK.events_to_torch(ev), view, 1000)
    np.testing.assert_array_equal(view.numpy(), want)
    assert not big[:, 1::2].any()


def test_torch_policies_and_errors():
    ev = np.zeros(2, EventCD)
    ev["x"] = [0, 50]
    out = torch.zeros(1, 2, 4, 4)
    with pytest.warns(RuntimeWarning):
        assert TK.histo(ev, out, 10, on_out_of_range="warn") == 1
    out.fill_(7)
    with pytest.raises(EventArrayError, match="index 1"):
        TK.histo(ev, out, 10, on_out_of_range="raise")
    assert (out == 7).all()
    with pytest.raises(EventArrayError, match="dtype"):
        TK.event_cube(ev, torch.zeros(1, 6, 4, 4, dtype=torch.int32), 10)
    with pytest.raises(EventArrayError, match="torch tensor"):
        TK.voxel_grid(ev, np.zeros((1, 5, 4, 4), np.float32), 10)
    empty = torch.ones(1, 5, 4, 4)
    assert TK.voxel_grid(np.zeros(0, EventCD), empty, 10) == 0 and not empty.any()
    assert set(TK.TORCH_FUNCTIONS) >= {"histo", "diff", "event_cube", "stacked_histogram", "voxel_grid"}


def test_kernels_module_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, evstream.preprocessing.kernels, evstream.preprocessing; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
