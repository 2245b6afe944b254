"""evstream.synth simulator: boxes agree with events, determinism, sensor effects."""

import numpy as np
import pytest

from evstream.io import EventBbox, EventCD
from evstream.synth import (DEFAULT_CLASSES, SceneConfig, SensorConfig, make_simulator,
                            simulate)

QUIET = SensorConfig(noise_rate_hz=0.0, hot_pixel_fraction=0.0)
ONE_OBJECT = dict(max_objects=1, initial_objects=(1, 1), spawn_rate_hz=3.0)


def _labelled(boxes):
    return boxes[boxes["w"] > 0]


def _in_box(ev, b, margin):
    return ((ev["x"] >= b["x"] - margin) & (ev["x"] < b["x"] + b["w"] + margin)
            & (ev["y"] >= b["y"] - margin) & (ev["y"] < b["y"] + b["h"] + margin))


@pytest.mark.parametrize("cls", DEFAULT_CLASSES, ids=lambda c: c.name)
@pytest.mark.parametrize("size", [(240, 304), (360, 640)], ids=["gen1", "640x360"])
def test_events_of_a_moving_object_fall_in_its_box(cls, size):
    """One object, no noise: every event of the last 5 ms lies in the box of that time (3 px
    margin for the trailing edge), and the events of the last 20 ms span the box tightly."""
    scene = SceneConfig(classes=(cls,), **ONE_OBJECT)
    ev, boxes = simulate(*size, duration_us=1_000_000, seed=5, scene=scene, sensor=QUIET)
    lab = _labelled(boxes)
    assert len(lab) >= 10
    inside = total = 0
    for b in lab:
        t = b["t"]
        recent = ev[(ev["t"] > t - 5000) & (ev["t"] <= t)]
        inside += int(_in_box(recent, b, 3).sum())
        total += len(recent)
        window = ev[(ev["t"] > t - 20000) & (ev["t"] <= t)]
        assert len(window) > 20
        x0, x1 = window["x"].min(), window["x"].max() + 1
        y0, y1 = window["y"].min(), window["y"].max() + 1
        ix = max(0.0, min(x1, b["x"] + b["w"]) - max(x0, b["x"]))
        iy = max(0.0, min(y1, b["y"] + b["h"]) - max(y0, b["y"]))
        union = (x1 - x0) * (y1 - y0) + b["w"] * b["h"] - ix * iy
        assert ix * iy / union > 0.75, (cls.name, t)
    assert total > 1000
    assert inside / total > 0.98


def test_busy_scene_events_come_from_objects():
    """Several objects, static camera, no noise: events appear only where objects are (boxes
    of visible objects, or the extent of objects too hidden or too far out to be labelled)."""
    sim = make_simulator(240, 304, 1_000_000, seed=3, sensor=QUIET,
                         scene=SceneConfig(initial_objects=(3, 3), spawn_rate_hz=3.0))
    ev = np.concatenate([e for _, e in sim.chunks()], dtype=EventCD)
    sc = sim.scene
    for t in range(100_000, 1_000_000, 100_000):
        recent = ev[(ev["t"] > t - 3000) & (ev["t"] <= t)]
        p = sc.params(sc.active(t), t)
        near = np.zeros(len(recent), bool)
        for cx, cy, hw, hh in p[:, :4]:
            near |= ((np.abs(recent["x"] + 0.5 - cx) <= hw + 3)
                     & (np.abs(recent["y"] + 0.5 - cy) <= hh + 3))
        assert near.all(), t


def test_boxes_are_in_frame_and_well_formed():
    ev, boxes = simulate(240, 304, 2_000_000, seed=11)
    assert boxes.dtype == EventBbox
    assert np.all(np.diff(boxes["t"]) >= 0)
    lab = _labelled(boxes)
    assert len(lab) > 0
    assert np.all(lab["x"] >= 0) and np.all(lab["y"] >= 0)
    assert np.all(lab["x"] + lab["w"] <= 304) and np.all(lab["y"] + lab["h"] <= 240)
    assert np.all(lab["w"] >= 3) and np.all(lab["h"] >= 3)
    assert set(np.unique(lab["class_id"])) <= {0, 1, 2}
    assert np.all(lab["track_id"] >= 1) and np.all(boxes["class_confidence"] == 1.0)
    # one row per object per label time
    keys = list(zip(lab["t"].tolist(), lab["track_id"].tolist()))
    assert len(keys) == len(set(keys))
    # classes look different: cars are wide, pedestrians tall
    full = lab[(lab["x"] > 0) & (lab["x"] + lab["w"] < 304)]
    aspect = full["w"] / full["h"]
    if np.any(full["class_id"] == 0) and np.any(full["class_id"] == 1):
        assert aspect[full["class_id"] == 0].min() > aspect[full["class_id"] == 1].max()


def test_empty_frames_get_the_empty_class():
    scene = SceneConfig(initial_objects=(0, 0), spawn_rate_hz=0.0)
    ev, boxes = simulate(240, 304, 500_000, seed=0, label_rate_hz=20, scene=scene)
    assert len(boxes) == 9                       # t = 50, 100, ..., 450 ms
    assert np.all(boxes["class_id"] == len(DEFAULT_CLASSES))
    assert np.all(boxes["w"] == 0) and np.all(boxes["track_id"] == 0)
    assert boxes["t"].tolist() == list(range(50_000, 500_000, 50_000))


def test_deterministic_by_seed():
    a_ev, a_bx = simulate(240, 304, 400_000, seed=7)
    b_ev, b_bx = simulate(240, 304, 400_000, seed=7)
    c_ev, c_bx = simulate(240, 304, 400_000, seed=8)
    assert np.array_equal(a_ev, b_ev) and np.array_equal(a_bx, b_bx)
    assert not (len(a_ev) == len(c_ev) and np.array_equal(a_ev, c_ev))
    # recording i does not depend on the chunking of the output
    sim = make_simulator(240, 304, 400_000, seed=7)
    small = np.concatenate([e for _, e in sim.chunks(chunk_events=1000)], dtype=EventCD)
    assert np.array_equal(small, a_ev)


def test_events_are_sorted_and_inside_the_sensor():
    ev, _ = simulate(360, 640, 300_000, seed=2,
                     scene=SceneConfig(ego_motion=1.0, ego_stop_probability=0.0))
    assert ev.dtype == EventCD
    t = ev["t"]
    assert np.all(np.diff(t) >= 0)
    assert ev["x"].max() < 640 and ev["y"].max() < 360
    assert set(np.unique(ev["p"])) == {0, 1}
    # within one timestamp: rows in order (t, y, p, x)
    key = ((t * 360 + ev["y"].astype(np.int64)) * 2 + ev["p"]) * 640 + ev["x"]
    assert np.all(np.diff(key) >= 0)


def test_refractory_period_per_pixel():
    sensor = SensorConfig(noise_rate_hz=0.0, hot_pixel_fraction=0.0, refractory_us=700)
    ev, _ = simulate(240, 304, 500_000, seed=4, sensor=sensor,
                     scene=SceneConfig(initial_objects=(3, 3)))
    pix = ev["y"].astype(np.int64) * 304 + ev["x"]
    order = np.lexsort((ev["t"], pix))
    same = pix[order][1:] == pix[order][:-1]
    gaps = np.diff(ev["t"][order])[same]
    assert len(gaps) > 100 and gaps.min() >= 700


def test_background_activity_and_hot_pixels():
    """An empty static scene: only noise, at the configured rate, plus a few hot pixels."""
    scene = SceneConfig(initial_objects=(0, 0), spawn_rate_hz=0.0)
    sensor = SensorConfig(noise_rate_hz=2.0, hot_pixel_fraction=1e-4,
                          hot_pixel_rate_hz=(400.0, 500.0))
    sim = make_simulator(240, 304, 1_000_000, seed=1, scene=scene, sensor=sensor)
    ev = np.concatenate([e for _, e in sim.chunks()], dtype=EventCD)
    n_hot = len(sim.noise.hot_pix)
    expected = 2.0 * 240 * 304 + 450.0 * n_hot
    assert abs(len(ev) - expected) < 6 * np.sqrt(expected) + 100
    counts = np.bincount(ev["y"].astype(np.int64) * 304 + ev["x"], minlength=240 * 304)
    assert n_hot >= 1
    assert np.sum(counts > 100) == n_hot
    assert 0.4 < ev["p"].mean() < 0.6


def test_ego_motion_bursts_and_quiet_periods():
    """A panning camera over a textured background gives bursts far above the quiet level."""
    moving = SceneConfig(ego_motion=1.0, ego_stop_probability=0.0, initial_objects=(0, 0),
                         spawn_rate_hz=0.0)
    still = SceneConfig(ego_motion=0.0, initial_objects=(0, 0), spawn_rate_hz=0.0)
    ev_m, _ = simulate(360, 640, 300_000, seed=3, scene=moving)
    ev_s, _ = simulate(360, 640, 300_000, seed=3, scene=still)
    rate_m = len(ev_m[ev_m["t"] > 100_000]) / 0.2
    rate_s = len(ev_s) / 0.3
    assert rate_m > 0.3e6            # hundreds of kev/s at 640x360 while panning
    assert rate_s < 0.1e6            # background activity only
    assert rate_m > 10 * rate_s


def test_one_megapixel():
    ev, boxes = simulate(720, 1280, 100_000, seed=0, label_rate_hz=60)
    assert ev["x"].max() < 1280 and ev["y"].max() < 720 and ev["x"].max() > 640
    assert np.all(np.diff(boxes["t"]) >= 0) and len(np.unique(boxes["t"])) == 5


def test_invalid_configs_raise():
    from evstream.errors import ArgumentError

    with pytest.raises(ArgumentError):
        simulate(240, 304, 1000, sensor=SensorConfig(contrast_threshold=0))
    with pytest.raises(ArgumentError):
        simulate(240, 304, 1000, scene=SceneConfig(ego_motion=2.0))
    with pytest.raises(ArgumentError):
        simulate(240, 4000, 1000)
    with pytest.raises(ArgumentError):
        simulate(240, 304, 0)
