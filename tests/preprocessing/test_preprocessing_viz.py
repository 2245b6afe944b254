"""Visualisations: shapes, dtypes, colours, ON/OFF consistency."""

import numpy as np
import pytest

import evstream.preprocessing as P
from evstream.preprocessing import viz

BG, POS, NEG = (30, 37, 52), (216, 223, 236), (64, 126, 201)


def test_binarized_colours_are_consistent():
    h = np.zeros((2, 1, 3), np.float32)
    h[0, 0, 0] = 1          # OFF only
    h[1, 0, 1] = 1          # ON only
    h[:, 0, 2] = 1          # both -> ON wins
    img = viz.viz_histo_binarized(h)
    assert img.shape == (1, 3, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == NEG and tuple(img[0, 1]) == POS and tuple(img[0, 2]) == POS
    d = np.array([[[-0.2, 0.4, 0.0]]], np.float32)
    img = viz.viz_diff_binarized(d)
    assert tuple(img[0, 0]) == NEG and tuple(img[0, 1]) == POS and tuple(img[0, 2]) == BG
    s = np.zeros((4, 1, 2), np.uint8)  # nb=2: channels 0,1 OFF; 2,3 ON
    s[1, 0, 0], s[3, 0, 1] = 1, 1
    img = viz.viz_stacked_histogram(s)
    assert tuple(img[0, 0]) == NEG and tuple(img[0, 1]) == POS
    v = np.zeros((3, 1, 2), np.float32)
    v[:, 0, 0], v[2, 0, 1] = -0.3, 0.5
    img = viz.viz_voxel_grid(v)
    assert tuple(img[0, 0]) == NEG and tuple(img[0, 1]) == POS


def test_grey_and_colour_maps():
    rng = np.random.default_rng(0)
    im = rng.normal(size=(2, 6, 5))
    for fn in (viz.viz_histo, viz.viz_diff, viz.viz_event_cube_rgb, viz.viz_timesurface,
               viz.viz_multichannel_timesurface):
        img = fn(im)
        assert img.shape == (6, 5, 3) and img.dtype == np.uint8
    assert (viz.viz_diff(np.zeros((1, 4, 4))) == 127).all()
    g = viz.viz_histo(im)
    assert (g[..., 0] == g[..., 1]).all()
    # ON - OFF ordering: more ON -> brighter
    h = np.zeros((2, 1, 2))
    h[1, 0, 0], h[0, 0, 1] = 1, 1
    g = viz.viz_histo(h)
    assert g[0, 0, 0] > g[0, 1, 0]
    ts = np.zeros((2, 1, 2), np.float32)
    ts[1, 0, 1] = 0.99
    img = viz.viz_timesurface(ts)
    assert tuple(img[0, 0]) != tuple(img[0, 1])
    assert img[0, 1, 0] > img[0, 1, 2]  # JET high -> red in RGB
    cube = viz.viz_event_cube_rgb(np.zeros((3, 2, 2)), split_polarity=False)
    assert cube.shape == (2, 2, 3)


def test_viz_accepts_torch():
    torch = pytest.importorskip("torch")
    img = viz.viz_histo_binarized(torch.ones(2, 3, 4))
    assert img.shape == (3, 4, 3)


@pytest.mark.parametrize("name", P.get_preprocess_function_names()[:10])
def test_registry_viz_entries(name):
    d = P.get_preprocess_dict(name)
    im = np.zeros((d["cin"], 5, 7), np.float32)
    im[..., 2, 3] = 0.5
    img = d["viz"](im)
    assert img.shape == (5, 7, 3) and img.dtype == np.uint8
