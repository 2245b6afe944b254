"""Registry contents and API, CDProcessor."""

import numpy as np
import pytest

import evstream.preprocessing as P
from evstream.errors import EventArrayError, EvstreamError
from evstream.io.dtypes import EventCD
from evstream.preprocessing import kernels as K
from evstream.preprocessing import viz

ORIGINAL = [  # name, cin, function, viz, kwargs (reference §14)
    ("diff", 1, K.diff, viz.viz_diff_binarized, {"preprocess_dtype": np.float32, "max_incr_per_pixel": 5}),
    ("diff_quantized", 1, K.diff_quantized, viz.viz_diff_binarized,
     {"preprocess_dtype": np.int8, "negative_bit_length": 8, "normalization": False}),
    ("histo", 2, K.histo, viz.viz_histo_binarized, {"preprocess_dtype": np.float32, "max_incr_per_pixel": 5}),
    ("histo_quantized", 2, K.histo_quantized, viz.viz_histo_binarized,
     {"preprocess_dtype": np.uint8, "negative_bit_length": 4, "total_bit_length": 8, "normalization": False}),
    ("timesurface", 2, K.timesurface, viz.viz_timesurface, {"preprocess_dtype": np.float32}),
    ("event_cube", 6, K.event_cube, viz.viz_event_cube_rgb,
     {"preprocess_dtype": np.float32, "split_polarity": True, "max_incr_per_pixel": 5}),
    ("event_cube_paper", 10, K.event_cube, viz.viz_event_cube_rgb,
     {"preprocess_dtype": np.float32, "split_polarity": True, "max_incr_per_pixel": 255 / 4}),
    ("multi_channel_timesurface", 6, K.multi_channel_timesurface, viz.viz_multichannel_timesurface,
     {"preprocess_dtype": np.float32}),
]


def test_registry_matches_original_then_additions():
    names = P.get_preprocess_function_names()
    assert names[:8] == [r[0] for r in ORIGINAL]
    assert names[8:10] == ["stacked_histogram", "voxel_grid"]
    for name, cin, fn, vis, kwargs in ORIGINAL:
        d = P.get_preprocess_dict(name)
        assert set(d) == {"cin", "events_to_tensor", "kwargs", "viz"}
        assert d["cin"] == cin and d["events_to_tensor"] is fn and d["viz"] is vis
        assert d["kwargs"] == kwargs
        assert P.get_preprocess_kwargs_keys(name) == list(kwargs)
    assert P.get_preprocess_dict("stacked_histogram")["cin"] == 20
    assert P.get_preprocess_dict("voxel_grid")["kwargs"] == {"preprocess_dtype": np.float32}


def test_get_preprocess_dict_is_a_deep_copy():
    d = P.get_preprocess_dict("histo")
    d["kwargs"]["max_incr_per_pixel"] = 99
    d["cin"] = 7
    assert P.get_preprocess_dict("histo")["kwargs"]["max_incr_per_pixel"] == 5
    assert P.get_preprocess_dict("histo")["cin"] == 2


def test_unknown_and_duplicate_names():
    with pytest.raises(P.PreprocessingNameError, match="known: diff, diff_quantized, histo"):
        P.get_preprocess_dict("hist")
    for exc in (AssertionError, ValueError, EvstreamError):
        with pytest.raises(exc):
            P.get_preprocess_kwargs_keys("nope")
    with pytest.raises(AssertionError, match="already registered"):
        P.register_new_preprocessing("histo", 2, K.histo, viz.viz_histo)
    with pytest.raises(P.PreprocessingNameError):
        P.CDProcessor(10, 10, preprocessing="nope")


def test_register_new_preprocessing_and_use_it():
    def double_histo(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True, gain=2.0):
        K.histo(events, output_array, total_tbins_delta_t, downsampling_factor, reset, max_incr_per_pixel=None)
        output_array *= gain

    name = "test_double_histo"
    if name not in P.PREPROCESSING_DICT:
        P.register_new_preprocessing(name, 2, double_histo, viz.viz_histo_binarized,
                                     {"preprocess_dtype": np.float64, "gain": 3.0})
    assert P.get_preprocess_function_names()[-1] == name
    proc = P.CDProcessor(2, 2, 1, name)
    e = np.zeros(1, EventCD)
    out = proc(e, delta_t=10)
    assert out.dtype == np.float64 and out[0, 0, 0, 0] == 3.0
    assert proc.last_dropped is None  # a custom function reports nothing
    assert P.get_preprocess_kwargs_keys(name) == ["preprocess_dtype", "gain"]


def test_cdprocessor_basics():
    proc = P.CDProcessor(3, 4, num_tbins=2, preprocessing="histo", preprocess_kwargs={"max_incr_per_pixel": 2})
    assert proc.get_array_dim() == (2, 2, 3, 4)
    assert proc.get_preprocess_dtype() == np.float32
    e = np.zeros(3, EventCD)
    e["x"], e["y"], e["p"], e["t"] = [0, 3, 9], [0, 2, 0], [1, 0, 1], [0, 50, 99]
    a = proc(e, delta_t=100)
    assert a is proc(e, delta_t=100)  # shared buffer, as the original
    assert proc(e, delta_t=100, copy=True) is not a
    assert a[0, 1, 0, 0] == 0.5 and a[1, 0, 2, 3] == 0.5
    assert proc.last_dropped == 1
    img = proc.show()
    assert img.shape == (3, 8, 3) and img.dtype == np.uint8
    assert proc.show(a, tbin=1).shape == (3, 4, 3)


def test_cdprocessor_inferred_delta_t_keeps_last_event():
    proc = P.CDProcessor(1, 1, num_tbins=2, preprocessing="histo", preprocess_kwargs={"max_incr_per_pixel": 1})
    e = np.zeros(2, EventCD)
    e["t"], e["p"] = [0, 100], [0, 1]
    a = proc(e)  # delta_t = t[-1] - t[0] = 100; the last event lies on the end and goes to the last bin
    assert proc.last_dropped == 0 and a[1, 1, 0, 0] == 1 and a[0, 0, 0, 0] == 1
    assert not proc(np.zeros(0, EventCD)).any()
    one = np.zeros(1, EventCD)
    assert proc(one)[0, 0, 0, 0] == 1  # a single event: window of 1 us


def test_cdprocessor_dtypes_and_policy():
    assert P.CDProcessor(4, 4, 1, "histo_quantized").get_preprocess_dtype() == np.uint8
    assert P.CDProcessor(4, 4, 1, "histo_quantized", 1).get_preprocess_dtype() == np.float32
    assert P.CDProcessor(4, 4, 1, "diff_quantized", 2).get_preprocess_dtype() == np.float32
    assert P.get_output_dtype("diff_quantized", 1) == np.float32
    assert P.get_output_dtype("histo", 0, {"preprocess_dtype": np.float64}) == np.float64
    assert P.CDProcessor(4, 4, 1, "histo", preprocess_kwargs={"preprocess_dtype": np.float64}).array.dtype == np.float64
    e = np.zeros(1, EventCD)
    e["x"] = 100
    with pytest.raises(EventArrayError):
        P.CDProcessor(4, 4, 1, "histo", on_out_of_range="raise")(e, 10)
    with pytest.raises(EventArrayError):
        P.CDProcessor(4, 4, 1, "histo", on_out_of_range="nope")
    proc = P.CDProcessor(4, 4, 1, "diff_quantized", 1)
    e["x"], e["p"] = 7, 1
    assert proc(e, 10)[0, 0, 0, 3] == 0.25


@pytest.mark.parametrize("name", P.get_preprocess_function_names()[:10])
def test_cdprocessor_every_builtin_with_downsampling(name):
    rng = np.random.default_rng(1)
    e = np.zeros(300, EventCD)
    e["x"], e["y"] = rng.integers(0, 16, 300), rng.integers(0, 8, 300)
    e["p"], e["t"] = rng.integers(0, 2, 300), np.sort(rng.integers(0, 1000, 300))
    proc = P.CDProcessor(4, 8, 3, name, downsampling_factor=1)
    a = proc(e, 1000)
    assert a.shape == (3, P.get_preprocess_dict(name)["cin"], 4, 8)
    assert a.any() and proc.last_dropped == 0
    assert proc.show().shape == (4, 24, 3)
