"""Prophesee's tutorial "Using a Sequential DataLoader to Create a Training Loop", as a plain
script for evstream (the tutorial's code with ``metavision_ml`` replaced by ``evstream``), plus
a training loop that actually runs.

Usage::

    python examples/sequential_dataloader_tutorial.py [--dataset-path DIR] [--workdir DIR]
                                                       [--video grid.mp4] [--max-frames N]

``--dataset-path``: a folder of ``*.h5`` tensor files with their ``_bbox.npy`` and a
``label_map_dictionary.json`` (the tutorial's archive, or your own). Without it, the script
builds a small dataset in ``--workdir`` (a temporary folder by default): two DAT recordings of
moving rectangles on a 1280x720 sensor with their boxes, turned into 360x640 ``histo`` tensor
files by ``evstream.preprocessing.hdf5.write_to_hdf5``, as the tutorial's files were.

The OpenCV windows open only when ``DOC_DISPLAY`` is not ``OFF`` (and a display exists);
``--video`` writes the same frames to an mp4 instead, for machines without a display.
"""

import argparse
import os
import glob
import tempfile
import numpy as np
import cv2
import torch
from functools import partial

from evstream.data import SequentialDataLoader
from evstream.data import box_processing as box_api


# ------------------------------------------------------------------ a dataset when none is given
def _moving_rectangles(duration_us, seed, height=720, width=1280):
    """Events of two rectangles moving right (their vertical edges fire every ms) and their boxes
    every 25 ms. Returns (EventCD events, EventBbox boxes)."""
    from evstream.io import EventBbox, EventCD
    rng = np.random.default_rng(seed)
    objects = [dict(x0=100.0 + 200 * seed, y=200.0, w=180.0, h=140.0, vx=400.0, cls=2),     # car
               dict(x0=700.0, y=380.0, w=60.0, h=160.0, vx=150.0 + 50 * seed, cls=0)]     # pedestrian
    chunks = []
    for t_ms in range(duration_us // 1000):
        t = t_ms * 1000
        for ob in objects:
            x = ob["x0"] + ob["vx"] * t * 1e-6
            ys = np.arange(int(ob["y"]), int(ob["y"] + ob["h"]), 2)
            for edge, pol in ((x, 1), (x + ob["w"], 0)):
                n = len(ys)
                ev = np.zeros(n, EventCD)
                ev["x"] = np.clip(int(edge) + rng.integers(-1, 2, n), 0, width - 1)
                ev["y"], ev["p"] = ys, pol
                ev["t"] = t + rng.integers(0, 1000, n)
                chunks.append(ev)
    events = np.concatenate(chunks, dtype=EventCD)
    events = events[np.argsort(events["t"], kind="stable")]
    box_times = np.arange(25_000, duration_us + 1, 25_000)
    boxes = np.zeros(len(box_times) * len(objects), EventBbox)
    for k, ob in enumerate(objects):
        part = boxes[k::len(objects)]
        part["t"] = box_times
        part["x"] = ob["x0"] + ob["vx"] * box_times * 1e-6
        part["y"], part["w"], part["h"] = ob["y"], ob["w"], ob["h"]
        part["class_id"], part["track_id"], part["class_confidence"] = ob["cls"], k, 1.0
    boxes = boxes[np.argsort(boxes["t"], kind="stable")]
    return events, boxes


def build_dataset(workdir):
    """Two tensor files named like the tutorial's, their boxes and a label map, in workdir."""
    from evstream.io import DatWriter
    from evstream.preprocessing.hdf5 import write_to_hdf5
    import json
    raw_dir = os.path.join(workdir, "recordings")
    dataset_path = os.path.join(workdir, "dataset_precomputed")
    os.makedirs(raw_dir, exist_ok=True)
    for seed, stem in enumerate(["moorea_2019-01-30_000_td_500000_10500000",
                                 "moorea_2019-01-30_000_td_11500000_21500000"]):
        events, boxes = _moving_rectangles(1_000_000 - 200_000 * seed, seed)
        dat = os.path.join(raw_dir, stem + "_td.dat")
        with DatWriter(dat, height=720, width=1280) as writer:
            writer.write(events)
        np.save(os.path.join(raw_dir, stem + "_bbox.npy"), boxes)
        write_to_hdf5(dat, output_folder=dataset_path, delta_t=50000, preprocess="histo",
                      height=360, width=640, box_labels=os.path.join(raw_dir, stem + "_bbox.npy"),
                      overwrite=True)
        # the tensor file is named after the recording minus "_td": <stem>.h5, next to
        # <stem>_bbox.npy, as in the tutorial's archive
    with open(os.path.join(dataset_path, "label_map_dictionary.json"), "w") as f:
        json.dump({"0": "pedestrian", "1": "two wheeler", "2": "car", "3": "truck", "4": "bus",
                   "5": "traffic sign", "6": "traffic light"}, f)
    return dataset_path


# ------------------------------------------------------------------ the tutorial
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


def display(frames, window):
    """The tutorial's display loop (only when DOC_DISPLAY is not OFF)."""
    if os.environ.get("DOC_DISPLAY", "ON") != "OFF":
        cv2.namedWindow(window)
        for frame in frames:
            cv2.imshow(window, frame[..., ::-1])
            key = cv2.waitKey(1)
            if key == 27:
                break
        cv2.destroyWindow(window)


class TinyRecurrentNet(torch.nn.Module):
    """A convolutional recurrent cell and a head predicting the number of boxes in each bin:
    just enough to show memory reset and masked losses."""

    def __init__(self, channels):
        super().__init__()
        self.encode = torch.nn.Conv2d(channels, 8, 5, stride=4, padding=2)
        self.recur = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 1)
        self.state = None

    def reset(self, mask_keep_memory):
        # zero the memory of the sequences that start in this batch, and detach the rest
        # (truncated backpropagation through time)
        if self.state is not None:
            self.state = self.state.detach() * mask_keep_memory

    def forward(self, x):
        x = torch.relu(self.encode(x))
        if self.state is None or self.state.shape != x.shape:
            self.state = torch.zeros_like(x)
        self.state = torch.tanh(x + self.recur(self.state))
        return self.head(self.state.mean(dim=(2, 3))).squeeze(-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-path", help="folder of *.h5 + *_bbox.npy + label_map_dictionary.json")
    parser.add_argument("--workdir", help="where to build the small dataset (default: a temp dir)")
    parser.add_argument("--video", help="write the show() frames to this mp4")
    parser.add_argument("--max-frames", type=int, default=60, help="frames written to --video")
    parser.add_argument("--train-steps", type=int, default=3, help="batches of the training loop")
    args = parser.parse_args()

    dataset_path = args.dataset_path
    if dataset_path is None:
        workdir = args.workdir or tempfile.mkdtemp(prefix="evstream_tutorial_")
        dataset_path = build_dataset(workdir)
        print("dataset built in", dataset_path)
    label_map_path = os.path.join(dataset_path, "label_map_dictionary.json")

    from evstream.data.sequential_dataset import load_labels_stub
    help(load_labels_stub)

    # the labels of the class we want to load from the dataset
    wanted_keys = ['car', 'pedestrian', 'two wheeler']

    # create a look up table to get the lookup IDs from the selected classes
    class_lookup = box_api.create_class_lookup(label_map_path, wanted_keys)

    custom_load_boxes_fn = partial(custom_load_boxes, class_lookup=class_lookup)

    files = glob.glob(os.path.join(dataset_path, "*.h5"))[:2]
    preprocess_function_name = "histo"
    delta_t = 50000
    channels = 2  # histograms have two channels
    num_tbins = 3
    height, width = 360, 640
    batch_size = 2
    max_incr_per_pixel = 2.5
    array_dim = [num_tbins, channels, height, width]

    seq_dataloader = SequentialDataLoader(files, delta_t, preprocess_function_name, array_dim,
                                          load_labels=custom_load_boxes_fn,
                                          batch_size=batch_size, num_workers=0,
                                          preprocess_kwargs={"max_incr_per_pixel": max_incr_per_pixel})

    for index, batch in enumerate(seq_dataloader):
        if index == 1: # we only visualize one example, remove it if you want to process all data
            break
        print("available keys: ", batch.keys(), "\n")
        print("input shape:", batch["inputs"].shape, "\n")
        print("metadata:", batch["video_infos"], "\n")
        print("box events: ", len(batch['labels']), "lists (corresponding to the no. of time bins), each containing a batch sized lists :", [len(labels) for labels in batch['labels']])

    print(repr(batch['labels'][1][0]))

    display(seq_dataloader.show(), 'sequential_dataloader')

    load_boxes_fn = partial(box_api.load_boxes, class_lookup=class_lookup)

    seq_dataloader = SequentialDataLoader(files, delta_t, preprocess_function_name, array_dim, load_labels=load_boxes_fn,
                                          batch_size=batch_size, num_workers=0, preprocess_kwargs={"max_incr_per_pixel": max_incr_per_pixel})

    from evstream.detection_tracking.display_frame import draw_box_events

    label_map = ['background'] + wanted_keys

    # adding box visualization. Notice how here again we rely on partial.
    viz_labels = partial(draw_box_events, label_map=label_map)

    display(seq_dataloader.show(viz_labels), 'sequential_dataloader')
    if args.video:
        n = seq_dataloader.save_video(args.video, viz_labels=viz_labels, max_frames=args.max_frames)
        print(f"wrote {n} frames to {args.video}")

    # ------------------------------------------------------------ the training loop, runnable
    net = TinyRecurrentNet(channels)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step, data in enumerate(seq_dataloader):
        if step == args.train_steps:
            break
        # we first need to reset the memory for each new sequence in the batch and detach the gradients
        net.reset(data['mask_keep_memory'].view(-1, 1, 1, 1))

        # clear the optimiser
        optimizer.zero_grad()

        # we compute the predictions chronologically. This is the forward pass.
        predictions = []
        for batch in data['inputs']:
            predictions.append(net.forward(batch))
        predictions = torch.stack(predictions)                     # [T, N]

        # targets: the number of boxes of each (bin, item); padding items have NaN labels
        targets = torch.tensor([[float(len(b)) if isinstance(b, np.ndarray) else 0.0 for b in bins]
                                for bins in data['labels']])
        # loss is computed only during relevant timestamps.
        mask = data["frame_is_labeled"]
        loss = torch.nn.functional.mse_loss(predictions[mask], targets[mask]) if mask.any() \
            else predictions.sum() * 0

        # we then compute the backward pass and update the networks weights.
        loss.backward()
        optimizer.step()
        print(f"step {step}: loss {loss.item():.4f} on {int(mask.sum())} labelled bins")


if __name__ == "__main__":
    main()
