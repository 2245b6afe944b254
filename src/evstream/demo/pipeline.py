"""``evstream demo``: the whole stack on an embedded default, with no download.

1. :func:`build_dataset` simulates labelled recordings (:mod:`evstream.synth`) into
   ``train/`` and ``val/`` and precomputes their ``histo`` tensor files
   (:func:`~evstream.preprocessing.hdf5.generate_hdf5`), box files alongside.
2. :func:`tutorial_loop` runs the tutorial's ``SequentialDataLoader`` loop with box labels and
   prints what the tutorial prints.
3. :func:`render` writes the loader's ``show()`` stream with boxes to an mp4 and a PNG contact
   sheet.
4. :func:`train_and_evaluate` trains a :class:`~evstream.demo.RecurrentDetector` with the
   tutorial's loop and compares COCO mAP / AP50 (evstream.metrics), AP@0.5 and mean IoU on the
   held-out recordings with an input-blind baseline.

Sizes default to a Gen1-like 304x240 sensor with 152x120 tensors so that the whole demo takes
about 45 s of CPU time (one thread; README).

Threads: the demo runs torch and OpenCV on :attr:`DemoConfig.threads` threads (default 1,
restored afterwards), whatever the machine or ``OMP_NUM_THREADS``: a small network gains nothing
from more, a loaded machine is not oversubscribed, and torch's float sums, whose order depends on
the thread count, come out the same, so the printed figures are the same on every run of a
given machine. Progress bars are drawn only on a terminal.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import SequentialDataLoader
from ..data import box_processing as box_api
from ..detection_tracking.display_frame import draw_box_events
from ..preprocessing.hdf5 import generate_hdf5
from ..synth import make_dataset
from ..synth.scene import SceneConfig
from .detector import RecurrentDetector
from .training import (coco_detection_metrics, evaluate, loss_curve_summary, train,
                       trivial_baseline)

#: the classes the tutorial asks for (``wanted_keys``); the synthetic label map has them all
WANTED_KEYS = ["car", "pedestrian", "two wheeler"]
#: the tutorial's histo setting, used both to precompute and to load
PREPROCESS_KWARGS = {"max_incr_per_pixel": 2.5}


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. Times in µs, sizes in pixels."""

    recordings: int = 8
    val_recordings: int = 2
    duration_s: float = 4.0
    sensor_height: int = 240
    sensor_width: int = 304
    downsampling_factor: int = 1
    delta_t: int = 50_000
    num_tbins: int = 4
    batch_size: int = 3          # 6 train recordings -> 2 per slot, nothing skipped
    steps: int = 300
    hidden: int = 32
    seed: int = 0
    threads: int = 1             # torch / OpenCV threads (see the module docstring)

    @property
    def tensor_size(self) -> tuple[int, int]:
        return (self.sensor_height >> self.downsampling_factor,
                self.sensor_width >> self.downsampling_factor)


def build_dataset(out_dir: str, config: DemoConfig) -> dict[str, list[str]]:
    """Simulated recordings under ``out_dir/recordings``, tensor files under
    ``out_dir/precomputed/<split>`` with the label map beside them (the tutorial's dataset
    layout); returns split -> tensor files, plus ``"label_map"``, ``"dataset"`` (the precomputed
    folder) and ``"recordings"`` (the train RAW files)."""
    train_share = config.recordings - config.val_recordings
    with tqdm(total=int(round(config.duration_s * config.recordings * 1000)), desc="simulating",
              unit="ms", leave=False, disable=None) as bar:
        dataset = make_dataset(os.path.join(out_dir, "recordings"), recordings=config.recordings,
                               duration_s=config.duration_s, height=config.sensor_height,
                               width=config.sensor_width, format="evt3", seed=config.seed,
                               splits={"train": train_share, "val": config.val_recordings},
                               scene=SceneConfig(initial_objects=(2, 4), spawn_rate_hz=2.0,
                                                 quiet_mean_s=0.5),
                               progress=_advance(bar, "us", 1000))
    height, width = config.tensor_size
    files = {}
    for split in ("train", "val"):
        recordings = [r for r in dataset.recordings if r.split == split]
        folder = os.path.join(out_dir, "precomputed", split)
        with tqdm(total=sum(r.events for r in recordings), desc=f"precomputing {split}",
                  unit="ev", unit_scale=True, leave=False, disable=None) as bar:
            generate_hdf5([r.paths[0] for r in recordings], folder, "histo", config.delta_t,
                          height=height, width=width, n_processes=1,
                          box_labels=[r.bbox_path for r in recordings], compression="blosc",
                          overwrite=True, progress=_advance(bar, "events"),
                          preprocess_kwargs=PREPROCESS_KWARGS)
        files[split] = sorted(glob.glob(os.path.join(folder, "*.h5")))
    label_map = os.path.join(out_dir, "precomputed", "label_map_dictionary.json")
    shutil.copyfile(os.path.join(out_dir, "recordings", "label_map_dictionary.json"), label_map)
    files["label_map"] = [label_map]
    files["dataset"] = [os.path.join(out_dir, "precomputed")]
    files["recordings"] = [r.paths[0] for r in dataset.recordings if r.split == "train"]
    return files


def _advance(bar: tqdm, key: str, divisor: int = 1):
    """A ``progress(kind, index, payload)`` callback advancing ``bar`` by ``payload[key]`` in
    whole units of ``divisor`` (the running sum is kept exactly, so the bar ends on its total)."""
    done = [0]

    def report(kind, index, payload):
        if kind == "advance":
            before = done[0]
            done[0] += int(payload[key])
            bar.update(done[0] // divisor - before // divisor)
    return report


@contextlib.contextmanager
def fixed_threads(threads: int):
    """torch's and OpenCV's thread counts set to ``threads`` inside the block, restored after."""
    torch_before, cv2_before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        cv2.setNumThreads(cv2_before)


def custom_load_boxes(metadata, batch_start_time, duration, tensor, **kwargs):
    """The tutorial's label loader, verbatim in behaviour."""
    box_events = box_api.load_box_events(metadata, batch_start_time, duration)
    class_lookup = kwargs["class_lookup"]
    box_events["class_id"] = class_lookup[box_events["class_id"]]
    num_tbins = tensor.shape[0]
    box_events = box_api.split_boxes(box_events, batch_start_time=batch_start_time,
                                     delta_t=duration // num_tbins, num_tbins=num_tbins)
    all_frames_are_okay = np.ones((len(box_events)), dtype=bool)
    return box_events, all_frames_are_okay


def _loader(files, config: DemoConfig, load_labels, num_tbins: int, batch_size: int):
    height, width = config.tensor_size
    return SequentialDataLoader(files, config.delta_t, "histo", [num_tbins, 2, height, width],
                                load_labels=load_labels, batch_size=batch_size, num_workers=0,
                                preprocess_kwargs=PREPROCESS_KWARGS)


def tutorial_loop(files: list[str], class_lookup: np.ndarray, config: DemoConfig, say=print) -> dict:
    """The tutorial's first loop (3 bins, batch of 2): prints and returns its first batch."""
    loader = _loader(files[:2], config, partial(custom_load_boxes, class_lookup=class_lookup),
                     num_tbins=3, batch_size=2)
    batch = next(iter(loader))
    say("available keys: ", batch.keys(), "\n")
    say("input shape:", batch["inputs"].shape, "\n")
    say("metadata:", batch["video_infos"], "\n")
    say("box events: ", len(batch["labels"]), "lists (corresponding to the no. of time bins), "
        "each containing a batch sized lists :", [len(labels) for labels in batch["labels"]])
    return batch


def render(recordings: list[str], class_lookup: np.ndarray, config: DemoConfig, out_dir: str,
           max_frames: int = 60, sheet_frames: int = 4) -> tuple[str, str]:
    """The loader's ``show()`` stream with boxes as ``batches.mp4`` and a contact sheet PNG of
    ``sheet_frames`` evenly spaced frames; returns both paths.

    It reads the RAW recordings themselves (tensors built on the fly at full sensor resolution),
    so the pictures are sharper than the downsampled training tensors.
    """
    os.makedirs(out_dir, exist_ok=True)
    full = DemoConfig(**{**config.__dict__, "downsampling_factor": 0})
    recordings = recordings[:4]
    loader = _loader(recordings, full, partial(box_api.load_boxes, class_lookup=class_lookup),
                     num_tbins=config.num_tbins, batch_size=len(recordings))
    viz_labels = partial(draw_box_events, label_map=["background"] + WANTED_KEYS,
                         draw_score=False)
    video = os.path.join(out_dir, "batches.mp4")
    frames = []
    for frame in loader.show(viz_labels):
        frames.append(frame)
        if len(frames) == max_frames:
            break
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 1e6 / config.delta_t,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()
    picks = np.linspace(0, len(frames) - 1, min(sheet_frames, len(frames))).astype(int)
    columns = 2
    tiles = [frames[i] for i in picks] + [np.zeros_like(frames[0])] * (-len(picks) % columns)
    rows = [np.hstack(tiles[r:r + columns]) for r in range(0, len(tiles), columns)]
    sheet = os.path.join(out_dir, "contact_sheet.png")
    cv2.imwrite(sheet, np.vstack(rows)[..., ::-1])
    return video, sheet


def train_and_evaluate(train_files: list[str], val_files: list[str], class_lookup: np.ndarray,
                       config: DemoConfig, say=print) -> dict:
    """Train with the tutorial's loop, then AP@0.5 / mean IoU on held-out recordings next to
    the input-blind baseline, on ``config.threads`` threads. Returns losses and both metric
    dicts."""
    with fixed_threads(config.threads):
        return _train_and_evaluate(train_files, val_files, class_lookup, config, say)


def _train_and_evaluate(train_files, val_files, class_lookup, config: DemoConfig, say) -> dict:
    torch.manual_seed(config.seed)
    load_boxes = partial(box_api.load_boxes, class_lookup=class_lookup)

    def loader(files):
        return _loader(files, config, load_boxes, config.num_tbins,
                       min(config.batch_size, len(files)))
    net = RecurrentDetector(2, len(WANTED_KEYS), hidden=config.hidden)
    say(f"training a {net.num_parameters():,}-parameter recurrent detector for "
        f"{config.steps} steps")
    losses = train(lambda: loader(train_files), net, config.steps)
    say(loss_curve_summary(losses))
    metrics = evaluate(net, loader(val_files), return_predictions=True)
    baseline = trivial_baseline(loader(train_files), loader(val_files), len(WANTED_KEYS),
                                return_predictions=True)
    height, width = config.tensor_size
    coco = coco_detection_metrics(metrics["predictions"], metrics["ground_truths"], WANTED_KEYS,
                                  height, width)
    baseline_coco = coco_detection_metrics(baseline["predictions"], baseline["ground_truths"],
                                           WANTED_KEYS, height, width)
    say(f"held-out COCO mAP: {coco['AP']:.3f}, AP50: {coco['AP_50']:.3f} (baseline "
        f"{baseline_coco['AP']:.3f}, {baseline_coco['AP_50']:.3f}; evstream.metrics, one COCO "
        f"image per labelled frame)")
    say(f"held-out AP@0.5: {metrics['ap']:.3f} (baseline {baseline['ap']:.3f}); "
        f"mean best IoU: {metrics['mean_best_iou']:.3f} (baseline "
        f"{baseline['mean_best_iou']:.3f}); {metrics['num_gt']} boxes in "
        f"{metrics['num_frames']} labelled frames")
    say("baseline = every class's mean training box on every labelled frame, ignoring the input")
    return {"losses": losses, "metrics": metrics, "baseline": baseline, "coco": coco,
            "baseline_coco": baseline_coco}


def run_demo(out_dir: str, config: DemoConfig = DemoConfig(), say=print) -> dict:
    """All the steps, on ``config.threads`` threads; returns the paths written and the
    training results."""
    with fixed_threads(config.threads):
        return _run_demo(out_dir, config, say)


def _run_demo(out_dir: str, config: DemoConfig, say) -> dict:
    say(f"1/5 simulating {config.recordings} labelled recordings "
        f"({config.sensor_width}x{config.sensor_height}, {config.duration_s} s each) and "
        f"precomputing histo tensors")
    files = build_dataset(out_dir, config)
    class_lookup = box_api.create_class_lookup(files["label_map"][0], WANTED_KEYS)
    say(f"   {len(files['train'])} train / {len(files['val'])} val tensor files in "
        f"{os.path.join(out_dir, 'precomputed')}")
    say("2/5 the tutorial's SequentialDataLoader loop")
    tutorial_loop(files["train"], class_lookup, config, say)
    say("3/5 rendering the loader's show() stream with boxes")
    video, sheet = render(files["recordings"], class_lookup, config,
                          os.path.join(out_dir, "render"))
    say(f"   video: {video}\n   contact sheet: {sheet}")
    say("4/5 training (net.reset(mask_keep_memory), forward over T, loss on labelled bins)")
    results = train_and_evaluate(files["train"], files["val"], class_lookup, config, say)
    say("5/5 done")
    return {"files": files, "video": video, "contact_sheet": sheet, **results}
