"""The Prophesee tutorial "Using a Sequential DataLoader to Create a Training Loop"
(../shared/seed/sequential_dataloader_tutorial.txt) run end to end with ``metavision_ml``
replaced by ``evstream``, on a dataset built here in the original's layout: two tensor files
(1280x720 sensor stored at 360x640, histo, delta_t 50 ms) named as the tutorial's, their
``_bbox.npy`` (one in the legacy ``ts``/``confidence`` dtype) and a ``label_map_dictionary.json``.

The code blocks below are the tutorial's, character for character (checked against the text
when ../shared is present). Display blocks run with DOC_DISPLAY=OFF as the tutorial's guard
intends, then once more with the OpenCV window calls replaced by a recorder, so every line runs.
The training-loop block is pseudo-code (``net``, ``compute_loss``, ``data['targets']``) and is
not run; ``examples/sequential_dataloader_tutorial.py`` has a runnable version.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evstream.io import EventBbox

from sample_oracle import REPO_ROOT, require_shared, shared_path
from seqloader_data import make_boxes, save_boxes, tensor_rows, write_label_map, write_tensor_file

#: the tutorial's text: $EVSTREAM_TUTORIAL, else ../shared/seed/ beside the repository
TUTORIAL = shared_path("EVSTREAM_TUTORIAL", REPO_ROOT.parent / "shared" / "seed" /
                       "sequential_dataloader_tutorial.txt")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sequential_dataloader_tutorial.py"

NAMES = ["moorea_2019-01-30_000_td_500000_10500000.h5", "moorea_2019-01-30_000_td_11500000_21500000.h5"]
ROWS = {NAMES[0]: 20, NAMES[1]: 16}          # 1 s and 0.8 s of 50 ms rows

# ------------------------------------------------------------------ the tutorial's code blocks
IMPORTS = """\
import os
import glob
import numpy as np
import cv2
from functools import partial

from metavision_ml.data import SequentialDataLoader
from metavision_ml.data import box_processing as box_api
"""

HELP = """\
from metavision_ml.data.sequential_dataset import load_labels_stub
help(load_labels_stub)
"""

CUSTOM_LOADER = """\
def custom_load_boxes(metadata, batch_start_time, duration, tensor, **kwargs):

    # we first load the events from file
    box_events = box_api.load_box_events(metadata, batch_start_time, duration)

    # here, we just look in the class look up what is the corresponding number for each class
    # in order to get contiguous class numbers for our training dataset.
    class_lookup = kwargs['class_lookup']
    box_events['class_id'] = class_lookup[box_events['class_id']]

    # We then split the box events into each time bin in a list of box event array
    num_tbins = tensor.shape[0]
    box_events = box_api.split_boxes(box_events, batch_start_time=batch_start_time, delta_t=duration // num_tbins, num_tbins=num_tbins)
    # if all frames contain labels
    all_frames_are_okay = np.ones((len(box_events)), dtype=bool)
    return box_events, all_frames_are_okay
"""

CLASS_LOOKUP = """\
# the labels of the class we want to load from the dataset
wanted_keys = ['car', 'pedestrian', 'two wheeler']

# create a look up table to get the lookup IDs from the selected classes
class_lookup = box_api.create_class_lookup(label_map_path, wanted_keys)

custom_load_boxes_fn = partial(custom_load_boxes, class_lookup=class_lookup)
"""

PARAMETERS = """\
files = glob.glob(os.path.join(dataset_path, "*.h5"))[:2]
preprocess_function_name = "histo"
delta_t = 50000
channels = 2  # histograms have two channels
num_tbins = 3
height, width = 360, 640
batch_size = 2
max_incr_per_pixel = 2.5
array_dim = [num_tbins, channels, height, width]
"""

INSTANTIATE = """\
seq_dataloader = SequentialDataLoader(files, delta_t, preprocess_function_name, array_dim,
                                      load_labels=custom_load_boxes_fn,
                                      batch_size=batch_size, num_workers=0,
                                      preprocess_kwargs={"max_incr_per_pixel": max_incr_per_pixel})
"""

ITERATE = """\
for index, batch in enumerate(seq_dataloader):
    if index == 1: # we only visualize one example, remove it if you want to process all data
        break
    print("available keys: ", batch.keys(), "\\n")
    print("input shape:", batch["inputs"].shape, "\\n")
    print("metadata:", batch["video_infos"], "\\n")
    print("box events: ", len(batch['labels']), "lists (corresponding to the no. of time bins), each containing a batch sized lists :", [len(labels) for labels in batch['labels']])
"""

LABELS_EXPRESSION = "batch['labels'][1][0]"

SHOW = """\
if os.environ.get("DOC_DISPLAY", "ON") != "OFF":
    cv2.namedWindow('sequential_dataloader')
    for frame in seq_dataloader.show():
        cv2.imshow('sequential_dataloader', frame[..., ::-1])
        key = cv2.waitKey(1)
        if key == 27:
            break
    cv2.destroyWindow('sequential_dataloader')
"""

DRAW_LABELS = '''\
def draw_labels(frame, labels):
    """
    Args:
        frame (np.ndarray) frame of size height x width x 3
        labels: label for one file and one tbin

    Returns:
        The input frame on which the labels were drawn.
    """
    return frame
'''

LOAD_BOXES = """\
load_boxes_fn = partial(box_api.load_boxes, class_lookup=class_lookup)

seq_dataloader = SequentialDataLoader(files, delta_t, preprocess_function_name, array_dim, load_labels=load_boxes_fn,
                                      batch_size=batch_size, num_workers=0, preprocess_kwargs={"max_incr_per_pixel": max_incr_per_pixel})
"""

DRAW_IMPORT = """\
from metavision_ml.detection_tracking.display_frame import draw_box_events

label_map = ['background'] + wanted_keys

# adding box visualization. Notice how here again we rely on partial.
viz_labels = partial(draw_box_events, label_map=label_map)
"""

SHOW_LABELS = """\
if os.environ.get("DOC_DISPLAY", "ON") != "OFF":
    cv2.namedWindow('sequential_dataloader')
    for frame in seq_dataloader.show(viz_labels):
        cv2.imshow('sequential_dataloader', frame[..., ::-1])
        key = cv2.waitKey(1)
        if key == 27:
            break
    cv2.destroyWindow('sequential_dataloader')
"""

CD_PROCESSOR = """\
from metavision_ml.data.cd_processor_dataset import CDProcessorDataLoader

# we use a folder of RAW files
files = ["driving_sample.raw","hand_spinner.raw", "spinner.raw", "80_balls.raw"]

for file in files:
    assert os.path.isfile(file)

dataloader = CDProcessorDataLoader(
    files,
    mode='delta_t',
    delta_t=10000,
    n_events=0,
    max_duration=10000000,
    preprocess_function_name="diff",
    height=240,
    width=320,
    num_tbins=5,
    batch_size=4,
    num_workers=2,
    load_labels=None,
    padding_mode='zeros')
"""

SHOW_DATALOADER = """\
from metavision_ml.data.sequential_dataset_common import show_dataloader

show = show_dataloader(
    dataloader=dataloader,
    height=dataloader.height,
    width=dataloader.width,
    vis_func=dataloader.get_vis_func(),
    viz_labels=None)

if os.environ.get("DOC_DISPLAY", "ON") != "OFF":
    cv2.namedWindow('stream_dataloader')
    for frame in show:
        cv2.imshow('stream_dataloader', frame[..., ::-1])
        key = cv2.waitKey(1)
        if key == 27:
            break
    cv2.destroyWindow('stream_dataloader')
"""

BLOCKS = [IMPORTS, HELP, CUSTOM_LOADER, CLASS_LOOKUP, PARAMETERS, INSTANTIATE, ITERATE,
          LABELS_EXPRESSION, SHOW, DRAW_LABELS, LOAD_BOXES, DRAW_IMPORT, SHOW_LABELS, CD_PROCESSOR,
          SHOW_DATALOADER]


def original(code: str) -> str:
    return code.replace("evstream", "metavision_ml")


def evstream_code(block: str) -> str:
    return block.replace("metavision_ml", "evstream")


def run(block: str, namespace: dict):
    exec(compile(evstream_code(block), "<tutorial>", "exec"), namespace)


# ------------------------------------------------------------------ data
# Boxes shared by both files, so that the expected labels do not depend on glob order. The
# tutorial's loop breaks when it receives batch 1, so ``batch`` is the second batch (chunk
# (150, 300] ms) and ``batch['labels'][1][0]`` is bin (200, 250] ms of item 0. It holds a car, a
# truck (unwanted -> -1), a pedestrian at exactly 250 ms that suppresses (NMS, the later wins) a
# box under it at 240 ms, and the boundary box at 250 ms.
COMMON = [  # t, x, y, w, h, class_id (0 pedestrian, 1 two wheeler, 2 car, 3 truck), track_id
    (210_000, 200, 250, 150, 120, 2, 1),
    (230_000, 500, 250, 150, 120, 3, 2),
    (240_000, 800, 250, 150, 120, 0, 3),
    (250_000, 805, 252, 150, 120, 0, 4),
]


def boxes_for(name: str) -> np.ndarray:
    """COMMON, then one car box on every 50 ms boundary of the file (track ids 100, 101, ...)."""
    end = ROWS[name] * 50_000
    rows = list(COMMON) + [(t, 300, 450, 100, 100, 2, 100 + k)
                           for k, t in enumerate(range(50_000, end + 1, 50_000))]
    boxes = make_boxes([r[0] for r in rows])
    for field, i in (("x", 1), ("y", 2), ("w", 3), ("h", 4), ("class_id", 5), ("track_id", 6)):
        boxes[field] = [r[i] for r in rows]
    return boxes


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset_precomputed")
    for i, name in enumerate(NAMES):
        write_tensor_file(root / name, tensor_rows(ROWS[name]))
        save_boxes(root / name.replace(".h5", "_bbox.npy"), boxes_for(name), legacy=(i == 1))
    write_label_map(root / "label_map_dictionary.json")
    return str(root)


# ------------------------------------------------------------------ tests
def test_blocks_are_the_tutorial_verbatim():
    text = require_shared(TUTORIAL, "the tutorial's text", "EVSTREAM_TUTORIAL").read_text()
    for block in BLOCKS:
        assert original(block).strip("\n") in text, block[:60]


class FakeWindows:
    """Stands in for cv2's window calls: records the frames shown, presses Esc after a few."""

    def __init__(self, monkeypatch, cv2_module, stop_after=4):
        self.frames, self.stop_after, self.closed = [], stop_after, []
        monkeypatch.setattr(cv2_module, "namedWindow", lambda name, *a: None)
        monkeypatch.setattr(cv2_module, "imshow", lambda name, f: self.frames.append(f.copy()))
        monkeypatch.setattr(cv2_module, "waitKey", lambda delay: 27 if len(self.frames) >= self.stop_after else -1)
        monkeypatch.setattr(cv2_module, "destroyWindow", lambda name: self.closed.append(name))


def expected_bin1() -> np.ndarray:
    """batch['labels'][1][0] by hand: boxes in (200, 250] ms in time order, classes through the
    lookup (car 1, pedestrian 2, two wheeler 3, others -1 = 4294967295), the 240 ms box
    suppressed by the one over it at 250 ms."""
    out = np.zeros(4, EventBbox)
    out["t"] = [210_000, 230_000, 250_000, 250_000]
    out["x"], out["y"] = [200, 500, 805, 300], [250, 250, 252, 450]
    out["w"], out["h"] = [150, 150, 150, 100], [120, 120, 120, 100]
    out["class_id"] = [1, 4294967295, 2, 1]
    out["track_id"] = [1, 2, 4, 104]
    out["class_confidence"] = np.float32(0.9)
    return out


def test_tutorial_end_to_end(dataset_path, capsys, monkeypatch):
    monkeypatch.setenv("DOC_DISPLAY", "OFF")
    ns = {"dataset_path": dataset_path,
          "label_map_path": os.path.join(dataset_path, "label_map_dictionary.json")}
    run(IMPORTS, ns)
    capsys.readouterr()

    run(HELP, ns)
    help_text = capsys.readouterr().out
    assert "Help on function load_labels_stub in module evstream.data.sequential_dataset:" in help_text
    assert "load_labels_stub(metadata, start_time, duration, tensor)" in help_text
    assert "This is a stub implementation of a function to load label data." in help_text
    assert "whether the frame contains a label" in help_text

    run(CUSTOM_LOADER, ns)
    run(CLASS_LOOKUP, ns)
    np.testing.assert_array_equal(ns["class_lookup"], [2, 3, 1, -1, -1, -1])
    run(PARAMETERS, ns)
    files = ns["files"]
    assert sorted(os.path.basename(f) for f in files) == sorted(NAMES)
    run(INSTANTIATE, ns)
    first_loader = ns["seq_dataloader"]
    assert len(first_loader) == min(_rounded(ROWS[n]) for n in NAMES)   # padding=False: shortest

    run(ITERATE, ns)
    out = capsys.readouterr().out
    infos = "(" + ", ".join(
        f"(FileMetadata object {f}\n\tstart_ts 0us delta_t 50000us, num_tbins 3, total duration "
        f"{ROWS[os.path.basename(f)] * 50000}us\n, 0, 150000)" for f in files) + ")"
    expected = ("available keys:  dict_keys(['inputs', 'labels', 'mask_keep_memory', "
                "'frame_is_labeled', 'video_infos']) \n\n"
                "input shape: torch.Size([3, 2, 2, 360, 640]) \n\n"
                f"metadata: {infos} \n\n"
                "box events:  3 lists (corresponding to the no. of time bins), each containing a "
                "batch sized lists : [2, 2, 2]\n")
    assert out == expected

    batch = ns["batch"]                        # the second batch: the loop breaks on receiving it
    assert [info[1:] for info in batch["video_infos"]] == [(150_000, 150_000)] * 2
    assert batch["inputs"].dtype == torch.float32
    assert batch["mask_keep_memory"].shape == (2, 1, 1, 1)
    assert batch["mask_keep_memory"].view(-1).tolist() == [1.0, 1.0]
    assert batch["frame_is_labeled"].dtype == torch.bool and batch["frame_is_labeled"].all()
    # rows 3..5 of each file, read where they are (row marker at [c0, 1, 1])
    np.testing.assert_allclose(batch["inputs"][:, :, 0, 1, 1].numpy() * 256, [[4, 4], [5, 5], [6, 6]])
    labels_bin1 = eval(evstream_code(LABELS_EXPRESSION), ns)
    assert labels_bin1.dtype == EventBbox
    exp = expected_bin1()
    for field in EventBbox.names:
        np.testing.assert_array_equal(labels_bin1[field], exp[field], err_msg=field)
    # boxes exactly on bin ends: 200 ms in bin 0, 300 ms (the chunk's end) in bin 2
    for i in range(2):
        assert list(batch["labels"][0][i]["t"]) == [200_000]
        assert list(batch["labels"][2][i]["t"]) == [300_000]

    run(SHOW, ns)                              # DOC_DISPLAY=OFF: nothing happens
    run(DRAW_LABELS, ns)
    frame = np.zeros((4, 4, 3), np.uint8)
    assert ns["draw_labels"](frame, None) is frame
    run(LOAD_BOXES, ns)
    run(DRAW_IMPORT, ns)
    assert ns["label_map"] == ["background", "car", "pedestrian", "two wheeler"]
    run(SHOW_LABELS, ns)
    assert capsys.readouterr().out == ""

    # the display blocks again, with the windows faked: every line of them runs
    monkeypatch.setenv("DOC_DISPLAY", "ON")
    windows = FakeWindows(monkeypatch, ns["cv2"])
    run(SHOW, ns)
    plain = windows.frames
    assert len(plain) == 4 and windows.closed == ["sequential_dataloader"]
    for k, shown in enumerate(plain):
        assert shown.shape == (360, 1280, 3) and shown.dtype == np.uint8
        rgb = shown[..., ::-1]
        marker = k <= 1                        # bins 0 and 1 of the first chunk of each file
        for col in (0, 640):
            assert (rgb[:10, col:col + 10, 0] == 222).all() == marker
    windows = FakeWindows(monkeypatch, ns["cv2"], stop_after=3)
    run(SHOW_LABELS, ns)
    drawn = windows.frames
    assert len(drawn) == 3
    # bin 1 of the first batch has labelled boxes: the drawn frame differs from the plain one
    assert (drawn[1] != plain[1]).any()
    assert (drawn[0][..., ::-1][:10, :10, 0] == 222).all()


def _rounded(rows: int) -> int:
    """Chunks of 150 ms in a file of ``rows`` x 50 ms (durations rounded down)."""
    return rows * 50_000 // 150_000


def test_first_loader_plays_every_boundary_box_once(dataset_path):
    """Over a whole epoch with the tutorial's custom loader (padding so both files are read to
    the end), every box on a chunk or bin boundary shows up exactly once, in the bin ending at
    it, except those past the last whole chunk."""
    from functools import partial

    from evstream.data import SequentialDataLoader, box_processing as box_api

    ns = {"box_api": box_api, "np": np}
    run(CUSTOM_LOADER, ns)
    lookup = box_api.create_class_lookup(os.path.join(dataset_path, "label_map_dictionary.json"))
    files = sorted(os.path.join(dataset_path, n) for n in NAMES)
    loader = SequentialDataLoader(files, 50000, "histo", [3, 2, 360, 640],
                                  load_labels=partial(ns["custom_load_boxes"], class_lookup=lookup),
                                  batch_size=2, num_workers=0, padding=True)
    seen = {f: [] for f in files}
    for batch in loader:
        for i, (meta, start, duration) in enumerate(batch["video_infos"]):
            if meta.is_padding():
                assert all(np.isnan(batch["labels"][t][i]) for t in range(3))
                continue
            for t in range(3):
                for box_t in batch["labels"][t][i]["t"]:
                    assert start + t * 50_000 < box_t <= start + (t + 1) * 50_000
                    seen[meta.path].append(int(box_t))
    for f in files:
        played = _rounded(ROWS[os.path.basename(f)]) * 150_000
        want = sorted(t for t in boxes_for(os.path.basename(f))["t"] if t <= played and t != 240_000)
        assert sorted(seen[f]) == want


def test_cd_processor_part(tmp_path, monkeypatch):
    """Part 2 of the tutorial (CDProcessorDataLoader, show_dataloader) on four RAW files."""
    pytest.importorskip("evstream.data.cd_processor_dataset")
    from seqloader_data import synthetic_events, write_raw

    monkeypatch.chdir(tmp_path)
    for i, (name, (h, w)) in enumerate(zip(["driving_sample.raw", "hand_spinner.raw", "spinner.raw",
                                              "80_balls.raw"],
                                             [(480, 640), (240, 320), (480, 640), (240, 320)])):
        write_raw(name, synthetic_events(100_000 + 50_000 * i, height=h, width=w, seed=i), h, w)
    ns = {}
    monkeypatch.setenv("DOC_DISPLAY", "OFF")
    run(IMPORTS, ns)
    run(CD_PROCESSOR, ns)
    run(SHOW_DATALOADER, ns)
    monkeypatch.setenv("DOC_DISPLAY", "ON")
    windows = FakeWindows(monkeypatch, ns["cv2"], stop_after=6)
    run(SHOW_DATALOADER, ns)
    assert len(windows.frames) == 6
    assert windows.frames[0].shape == (2 * 240, 2 * 320, 3)


def test_example_script_runs(tmp_path, capsys, monkeypatch):
    """examples/sequential_dataloader_tutorial.py builds its own data and runs headless."""
    monkeypatch.setenv("DOC_DISPLAY", "OFF")
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--workdir", str(tmp_path), "--video",
                                      str(tmp_path / "tutorial.mp4"), "--max-frames", "6"])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "input shape: torch.Size([3, 2, 2, 360, 640])" in out
    assert (tmp_path / "tutorial.mp4").stat().st_size > 0
