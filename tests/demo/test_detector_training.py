"""The demo recurrent detector (evstream.demo): targets, decoding, memory reset, and training on
a tiny synthetic event scene built here (no loaders): the loss goes down and the trained net
beats the input-blind baseline on held-out recordings."""

import math

import numpy as np
import pytest
import torch

from evstream.demo import (RecurrentDetector, decode_detections, detection_loss,
                           detection_metrics, evaluate, make_targets, mean_box_predictor,
                           train, trivial_baseline)
from evstream.io import EventBbox

SIZE = 64          # tensor height = width
T = 4              # bins per batch
N = 6              # recordings side by side
STRIDE = 4
HIDDEN = 24
SIDES = {1: (5, 8), 2: (12, 18)}     # class -> range of box sides (px): small vs large


# --------------------------------------------------------------------------- synthetic scene
class _Recording:
    """1-2 rectangles moving at constant velocity and bouncing off the borders, for a few
    chunks of T bins; every bin renders like a histogram of events: pixels the objects newly
    cover fire ON (channel 1), pixels they leave fire OFF (channel 0), plus sparse noise."""

    def __init__(self, rng):
        self.rng = rng
        self.chunks_left = int(rng.integers(2, 5))
        self.objects = []
        for _ in range(int(rng.integers(1, 3))):
            cls = int(rng.integers(1, 3))
            lo, hi = SIDES[cls]
            w, h = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
            speed, angle = rng.uniform(2.0, 4.0), rng.uniform(0, 2 * np.pi)
            self.objects.append(dict(cls=cls, w=w, h=h,
                                     x=float(rng.uniform(0, SIZE - w)),
                                     y=float(rng.uniform(0, SIZE - h)),
                                     vx=speed * np.cos(angle), vy=speed * np.sin(angle)))

    @staticmethod
    def _mask(x, y, w, h):
        m = np.zeros((SIZE, SIZE), bool)
        m[int(round(y)):int(round(y + h)), int(round(x)):int(round(x + w))] = True
        return m

    def step(self, t_us):
        """Moves the objects by one bin; returns (frame [2, S, S] float32, boxes EventBbox)."""
        frame = np.zeros((2, SIZE, SIZE), np.float32)
        boxes = np.zeros(len(self.objects), EventBbox)
        for k, ob in enumerate(self.objects):
            before = self._mask(ob["x"], ob["y"], ob["w"], ob["h"])
            for axis, size in (("x", ob["w"]), ("y", ob["h"])):
                v = "v" + axis
                ob[axis] += ob[v]
                if ob[axis] < 0 or ob[axis] > SIZE - size:
                    ob[v] = -ob[v]
                    ob[axis] = float(np.clip(ob[axis], 0, SIZE - size))
            after = self._mask(ob["x"], ob["y"], ob["w"], ob["h"])
            frame[1][after & ~before] = 1.0
            frame[0][before & ~after] = 1.0
            boxes[k] = (t_us, ob["x"], ob["y"], ob["w"], ob["h"], ob["cls"], k, 1.0)
        noise = self.rng.random((2, SIZE, SIZE)) < 0.01
        frame[noise] = np.maximum(frame[noise], 0.4)
        return frame, boxes


def synthetic_batches(num_batches, seed, unlabeled_every=3):
    """Batches in the loader's format: each slot plays recordings one after the other (a new one
    starts with mask_keep_memory 0); one bin in ``unlabeled_every`` (counted per recording) is
    not labeled (its boxes are there but frame_is_labeled is False)."""
    rng = np.random.default_rng(seed)
    slots = [None] * N
    clocks = [0] * N
    out = []
    for _ in range(num_batches):
        inputs = np.zeros((T, N, 2, SIZE, SIZE), np.float32)
        labels = [[None] * N for _ in range(T)]
        keep = np.ones(N, np.float32)
        labeled = np.zeros((T, N), bool)
        for n in range(N):
            if slots[n] is None or slots[n].chunks_left == 0:
                slots[n], clocks[n], keep[n] = _Recording(rng), 0, 0.0
            slots[n].chunks_left -= 1
            for t in range(T):
                clocks[n] += 1
                inputs[t, n], labels[t][n] = slots[n].step(clocks[n] * 10_000)
                labeled[t, n] = clocks[n] % unlabeled_every != 0
        out.append({"inputs": torch.from_numpy(inputs), "labels": labels,
                    "mask_keep_memory": torch.from_numpy(keep).view(N, 1, 1, 1),
                    "frame_is_labeled": torch.from_numpy(labeled),
                    "video_infos": tuple(("synthetic", 0, 0) for _ in range(N))})
    return out


def _boxes(rows):
    """EventBbox array from (x, y, w, h, class_id[, score]) tuples."""
    out = np.zeros(len(rows), EventBbox)
    for k, r in enumerate(rows):
        out[k]["x"], out[k]["y"], out[k]["w"], out[k]["h"], out[k]["class_id"] = r[:5]
        out[k]["class_confidence"] = r[5] if len(r) > 5 else 1.0
        out[k]["track_id"] = k
    return out


@pytest.fixture(autouse=True)
def _few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- targets, decoding
def test_make_targets_hand_case():
    slots = [_boxes([(8, 4, 8, 8, 2)]),                        # center (12, 8) px -> cell (3, 2)
             _boxes([(1, 2, 30, 6, 1), (0, 0, 5, 5, 4294967295)]),   # 2nd: "ignore" class
             float("nan"),                                     # padding slot
             torch.empty(0)]                                   # unlabeled slot
    tg = make_targets(slots, 4, 8, 8, stride=4, num_classes=2)
    assert tg["num_objects"] == 2
    heat, size, off, mask = (tg[k].numpy() for k in ("heatmap", "size", "offset", "mask"))
    assert heat.shape == (4, 2, 8, 8) and size.shape == (4, 2, 8, 8) and mask.shape == (4, 8, 8)
    # item 0: class 2 -> channel 1; sigma = max(0.5, 8 / 24) = 0.5 on both axes
    assert heat[0, 0].max() == 0
    assert heat[0, 1, 2, 3] == 1.0
    assert heat[0, 1, 2, 4] == pytest.approx(math.exp(-2.0), rel=1e-6)
    assert heat[0, 1, 3, 4] == pytest.approx(math.exp(-4.0), rel=1e-6)
    assert heat[0, 1, 2, 1] == pytest.approx(math.exp(-8.0), rel=1e-6)
    assert np.argwhere(mask[0]).tolist() == [[2, 3]]
    assert size[0, :, 2, 3] == pytest.approx([math.log(8), math.log(8)])
    assert off[0, :, 2, 3] == pytest.approx([0.0, 0.0])
    # item 1: center (16, 5) px -> (4.0, 1.25) cells -> cell (4, 1), offset (0, 0.25);
    # sigma_x = 30 / 24 = 1.25, sigma_y = 0.5; the ignore-class box is left out
    assert heat[1, 1].max() == 0
    assert heat[1, 0, 1, 4] == 1.0
    assert heat[1, 0, 1, 5] == pytest.approx(math.exp(-1 / (2 * 1.25 ** 2)), rel=1e-6)
    assert heat[1, 0, 2, 4] == pytest.approx(math.exp(-2.0), rel=1e-6)
    assert np.argwhere(mask[1]).tolist() == [[1, 4]]
    assert size[1, :, 1, 4] == pytest.approx([math.log(30), math.log(6)])
    assert off[1, :, 1, 4] == pytest.approx([0.0, 0.25])
    # padding / unlabeled slots: nothing
    for n in (2, 3):
        assert heat[n].max() == 0 and mask[n].max() == 0 and size[n].max() == 0


def test_decode_round_trips_targets():
    rng = np.random.default_rng(3)
    slots = []
    for n in range(3):
        rows = []
        for k, (cx, cy) in enumerate([(10.3, 12.9), (40.0, 20.5), (25.7, 50.1)][: n + 1]):
            w, h = rng.uniform(4, 20, 2)
            rows.append((cx - w / 2, cy - h / 2, w, h, 1 + (k + n) % 3))
        slots.append(_boxes(rows))
    tg = make_targets(slots, 3, 16, 16, stride=4, num_classes=3)
    dets = decode_detections(tg, stride=4, score_thresh=0.99, max_det=10)
    assert len(dets) == 3
    for want, got in zip(slots, dets):
        assert len(got) == len(want) and got.dtype == EventBbox
        order_w = np.lexsort((want["y"], want["x"]))
        order_g = np.lexsort((got["y"], got["x"]))
        for f in ("x", "y", "w", "h"):
            np.testing.assert_allclose(got[f][order_g], want[f][order_w], atol=1e-3)
        assert got["class_id"][order_g].tolist() == want["class_id"][order_w].tolist()
        assert np.all(got["class_confidence"] == 1.0)


def test_detection_loss_is_lowest_near_the_targets():
    slots = [_boxes([(8, 4, 8, 8, 2)]), _boxes([(30, 30, 12, 6, 1)])]
    tg = make_targets(slots, 2, 16, 16, stride=4, num_classes=2)
    logit = torch.logit(tg["heatmap"].clamp(1e-4, 1 - 1e-4))
    good = {"heatmap_logits": logit, "size": tg["size"].clone(), "offset": tg["offset"].clone()}
    bad = {"heatmap_logits": torch.zeros_like(logit), "size": tg["size"] + 1,
           "offset": tg["offset"] + 0.5}
    total_good, parts = detection_loss(good, tg, return_parts=True)
    assert parts["size"] == 0 and parts["offset"] == 0
    assert float(total_good) < 0.05
    total_bad, parts_bad = detection_loss(bad, tg, return_parts=True)
    assert parts_bad["size"] == pytest.approx(2.0) and parts_bad["offset"] == pytest.approx(1.0)
    assert float(total_bad) > 1.0


# --------------------------------------------------------------------------- memory
def test_reset_zeroes_masked_slots_and_detaches():
    torch.manual_seed(0)
    net = RecurrentDetector(2, 2, hidden=8)
    x = torch.rand(3, 2, 32, 32)
    net(x)
    net(x)
    before = net.state.clone()
    assert net.state.grad_fn is not None                      # part of the graph
    net.reset(torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1, 1))
    assert net.state.grad_fn is None and not net.state.requires_grad
    assert torch.equal(net.state[1], torch.zeros_like(before[1]))
    assert torch.equal(net.state[0], before[0]) and torch.equal(net.state[2], before[2])
    # the reset slot now behaves like a fresh net; the kept ones remember
    out = net(x)
    fresh = RecurrentDetector(2, 2, hidden=8)
    fresh.load_state_dict(net.state_dict())
    ref = fresh(x)
    assert torch.allclose(out["heatmap_logits"][1], ref["heatmap_logits"][1], atol=1e-6)
    assert not torch.allclose(out["heatmap_logits"][0], ref["heatmap_logits"][0], atol=1e-6)
    # the batch size changes: the memory is dropped, the next forward starts from zeros
    net.reset(torch.ones(5, 1, 1, 1))
    assert net.state is None
    assert net(torch.rand(5, 2, 32, 32))["heatmap_logits"].shape == (5, 2, 8, 8)
    net.reset(None)
    assert net.state is None


def test_default_size_is_a_few_hundred_k_parameters():
    net = RecurrentDetector(2, 3)
    assert 200_000 <= net.num_parameters() <= 600_000
    out = net(torch.rand(1, 2, 48, 64))
    assert out["heatmap_logits"].shape == (1, 3, 12, 16)
    assert out["size"].shape == out["offset"].shape == (1, 2, 12, 16)
    net8 = RecurrentDetector(2, 3, hidden=16, stride=8)
    assert net8(torch.rand(2, 2, 48, 64))["size"].shape == (2, 2, 6, 8)


# --------------------------------------------------------------------------- the loop
def test_loss_ignores_unlabeled_bins():
    """Garbage labels on unlabeled bins change nothing; a batch with no labeled bin makes no step."""
    batches = synthetic_batches(1, seed=5)
    garbage = dict(batches[0])
    garbage["labels"] = [[_boxes([(1, 1, 3, 3, 2)]) if not garbage["frame_is_labeled"][t, n]
                          else slot for n, slot in enumerate(bins)]
                         for t, bins in enumerate(garbage["labels"])]
    results = []
    for batch in (batches[0], garbage):
        torch.manual_seed(0)
        net = RecurrentDetector(2, 2, hidden=8)
        results.append(train([batch], net, 1, progress=False)[0])
    assert results[0] == results[1]
    unlabeled = dict(batches[0], frame_is_labeled=torch.zeros(T, N, dtype=torch.bool))
    torch.manual_seed(0)
    net = RecurrentDetector(2, 2, hidden=8)
    weights = [p.detach().clone() for p in net.parameters()]
    losses = train([unlabeled], net, 1, progress=False)
    assert len(losses) == 1 and math.isnan(losses[0])
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))


def test_train_takes_lists_factories_and_generators():
    batches = synthetic_batches(2, seed=6)
    net = RecurrentDetector(2, 2, hidden=8)
    assert len(train(batches, net, 5, progress=False)) == 5                 # a list: cycled
    assert len(train(lambda: iter(batches[:1]), net, 3, progress=False)) == 3   # a factory
    assert len(train((b for b in batches), net, 5, progress=False)) == 2    # a generator: runs out


TRAIN_STEPS = 100


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = RecurrentDetector(2, 2, hidden=HIDDEN, stride=STRIDE)
    batches = synthetic_batches(TRAIN_STEPS // 2, seed=0)   # two passes over 50 batches
    losses = train(batches, net, TRAIN_STEPS, lr=3e-3, progress=False)
    return net, batches, losses


def test_training_loss_decreases(trained):
    _, _, losses = trained
    losses = np.asarray(losses)
    assert len(losses) == TRAIN_STEPS and np.all(np.isfinite(losses))
    first, last = losses[:20].mean(), losses[-20:].mean()
    assert last < 0.6 * first, (first, last)


def test_trained_detector_beats_trivial_baseline(trained):
    net, train_batches, _ = trained
    held_out = synthetic_batches(8, seed=1)
    memory = net.state
    metrics = evaluate(net, held_out)
    assert net.state is memory and net.training            # training memory and mode restored
    base = trivial_baseline(train_batches, held_out, num_classes=2)
    assert metrics["num_frames"] == base["num_frames"] > 0
    assert metrics["num_gt"] == base["num_gt"] > 0
    assert metrics["ap"] > 0.3 and metrics["ap"] > base["ap"] + 0.25, (metrics, base)
    assert metrics["mean_best_iou"] > base["mean_best_iou"] + 0.2, (metrics, base)
    for k in (1, 2):
        assert metrics["ap_per_class"][k] > base["ap_per_class"][k]


# --------------------------------------------------------------------------- metrics
def test_detection_metrics_hand_case():
    gts = [_boxes([(0, 0, 10, 10, 1)]), _boxes([(20, 20, 10, 10, 1)])]
    perfect = [g.copy() for g in gts]
    m = detection_metrics(perfect, gts, num_classes=2)
    assert m["ap"] == 1.0 and m["mean_best_iou"] == 1.0 and math.isnan(m["ap_per_class"][2])
    # ranked: FP (0.9), TP (0.8), TP (0.7): precision 0, 1/2, 2/3 at recall 0, 1/2, 1
    # -> envelope 2/3 on both recall steps -> AP = 2/3
    preds = [_boxes([(40, 40, 10, 10, 1, 0.9), (0, 0, 10, 10, 1, 0.8)]),
             _boxes([(22, 20, 10, 10, 1, 0.7), (20, 20, 10, 10, 2, 0.95)])]
    m = detection_metrics(preds, gts, num_classes=2)
    assert m["ap_per_class"][1] == pytest.approx(2 / 3)
    assert m["ap"] == pytest.approx(2 / 3)                    # class 2 has no ground truth
    assert m["mean_best_iou"] == pytest.approx((1.0 + 80 / 120) / 2)       # IoU 80/120 = 2/3
    # a detection below the IoU threshold (here 25/175) is a false positive -> AP 0
    m = detection_metrics([_boxes([(5, 5, 10, 10, 1)]), _boxes([])], gts, num_classes=1)
    assert m["ap"] == 0.0 and m["mean_best_iou"] == pytest.approx(25 / 175 / 2)
    assert m["num_detections"] == 1 and m["num_gt"] == 2 and m["num_frames"] == 2


def test_mean_box_predictor_and_baseline():
    labels = [[_boxes([(0, 0, 10, 20, 1), (30, 30, 4, 4, 2)]), _boxes([(10, 10, 20, 10, 1)])],
              [_boxes([(50, 50, 8, 8, 2)]), float("nan")]]
    batch = {"inputs": torch.zeros(2, 2, 2, 8, 8), "labels": labels,
             "mask_keep_memory": torch.zeros(2, 1, 1, 1),
             "frame_is_labeled": torch.tensor([[True, True], [False, False]])}
    guess = mean_box_predictor([batch], num_classes=2)
    # class 1: centers (5, 10) and (20, 15), sizes (10, 20) and (20, 10) -> center (12.5, 12.5),
    # size (15, 15); class 2 only from the labeled bin 0
    assert guess["class_id"].tolist() == [1, 2]
    assert guess[0]["x"] == pytest.approx(5.0) and guess[0]["w"] == pytest.approx(15.0)
    assert guess[1]["x"] == pytest.approx(30.0) and guess[1]["h"] == pytest.approx(4.0)
    base = trivial_baseline([batch], [batch], num_classes=2)
    assert base["num_frames"] == 2 and base["num_gt"] == 3
    assert base["ap_per_class"][2] == 1.0                     # the only class-2 box is the mean
