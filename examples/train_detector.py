"""Train a small recurrent detector on precomputed event tensors: a training loop to copy.

Usage::

    python examples/train_detector.py --synthetic [--workdir DIR]        # builds a dataset first
    python examples/train_detector.py --dataset DIR [--classes car pedestrian] [--steps 300]

Dataset layout (the sequential-loader tutorial's)::

    DIR/label_map_dictionary.json      {"0": "pedestrian", "1": "car", ...}
    DIR/train/*.h5  + *_bbox.npy       tensor files made by `evstream precompute` (or
    DIR/val/*.h5    + *_bbox.npy       evstream.preprocessing.hdf5.write_to_hdf5), boxes alongside
                                       (`test/` is used when there is no `val/`)

Without `train/`, the `*.h5` files of DIR itself are used and the last `--val-fraction` of them
(sorted by name) are held out.

`--synthetic` writes such a dataset to `--workdir` (a temporary folder by default) with
``evstream.demo.pipeline.build_dataset``: simulated RAW recordings of cars, pedestrians and two
wheelers on a 304x240 sensor (``evstream.synth``), boxes at 20 Hz, turned into 152x120 `histo`
tensor files.

What the script does:

1. ``SequentialDataLoader`` over the train files, labels from ``box_processing.load_boxes``
   (boxes rescaled to tensor pixels, class ids mapped to 1..K by ``create_class_lookup``).
2. A :class:`evstream.demo.RecurrentDetector` (conv encoder -> ConvGRU -> center heatmap + size
   + offset heads) trained with the tutorial's loop: ``net.reset(mask_keep_memory)``,
   chronological forward over the T bins, loss on the labeled bins only, backward, step. Each
   batch continues the recordings of the previous one, so the memory carries over while the
   gradient stops at the batch boundary (truncated backpropagation through time).
3. The loss curve, then AP@0.5 and mean best IoU on the held-out recordings next to an
   input-blind baseline (every class's mean training box on every labeled frame).

``evstream.demo.train`` is the same loop as a function.
"""

import argparse
import glob
import json
import os
import tempfile
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from evstream.data import SequentialDataLoader
from evstream.data import box_processing as box_api
from evstream.demo import (RecurrentDetector, detection_loss, evaluate, loss_curve_summary,
                           make_targets, trivial_baseline)
from evstream.demo.pipeline import DemoConfig, build_dataset
from evstream.preprocessing.hdf5 import read_tensor_attrs


def split_files(dataset, val_fraction):
    """(train files, held-out files) following the layout in the module docstring."""
    if os.path.isdir(os.path.join(dataset, "train")):
        train_files = sorted(glob.glob(os.path.join(dataset, "train", "*.h5")))
        held_dir = "val" if os.path.isdir(os.path.join(dataset, "val")) else "test"
        return train_files, sorted(glob.glob(os.path.join(dataset, held_dir, "*.h5")))
    files = sorted(glob.glob(os.path.join(dataset, "*.h5")))
    n_val = max(1, int(round(len(files) * val_fraction))) if len(files) > 1 else 0
    return files[:len(files) - n_val], files[len(files) - n_val:]


# ------------------------------------------------------------------ training
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="folder laid out as in the docstring")
    parser.add_argument("--synthetic", action="store_true", help="build a small dataset first")
    parser.add_argument("--workdir", help="where --synthetic writes (default: a temp folder)")
    parser.add_argument("--classes", nargs="*", default=[],
                        help="label-map names to train on (default: all but 'empty')")
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--height", type=int, help="tensor height (default: as stored)")
    parser.add_argument("--width", type=int, help="tensor width (default: as stored)")
    parser.add_argument("--num-tbins", type=int, default=8, help="T: bins per batch (BPTT length)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200, help="batches (optimizer steps)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=32, help="channels of the ConvGRU state")
    parser.add_argument("--stride", type=int, default=4, choices=[2, 4, 8, 16])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write the trained weights here (.pt)")
    args = parser.parse_args()
    if not args.dataset and not args.synthetic:
        parser.error("give --dataset DIR or --synthetic")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    dataset = args.dataset
    if args.synthetic:
        workdir = args.workdir or tempfile.mkdtemp(prefix="evstream_det_")
        dataset = build_dataset(workdir, DemoConfig())["dataset"][0]
        print("dataset written to", dataset)
    train_files, val_files = split_files(dataset, args.val_fraction)
    if not train_files or not val_files:
        raise SystemExit(f"need train and held-out .h5 files in {dataset}")

    # classes: names of the label map -> contiguous ids 1..K (0 is the background)
    label_map_path = os.path.join(dataset, "label_map_dictionary.json")
    class_lookup = box_api.create_class_lookup(label_map_path, args.classes)
    num_classes = int(class_lookup.max())

    # the tensor files say how they were made: delta_t, preprocessing, stored size
    attrs = read_tensor_attrs(train_files[0])
    channels, stored_h, stored_w = attrs.shape
    array_dim = [args.num_tbins, channels, args.height or stored_h, args.width or stored_w]
    print(f"{len(train_files)} train / {len(val_files)} held-out files, {num_classes} classes, "
          f"delta_t {attrs.delta_t} us, {attrs.name or 'histo'}, array_dim {array_dim}")

    load_boxes = partial(box_api.load_boxes, class_lookup=class_lookup)
    loader_args = dict(delta_t=attrs.delta_t, preprocess_function_name=attrs.name or "histo",
                       array_dim=array_dim, load_labels=load_boxes, num_workers=args.num_workers)
    train_loader = SequentialDataLoader(train_files, batch_size=args.batch_size, **loader_args)
    # held out: padding plays every recording to its end (padding items are never labeled)
    val_loader = SequentialDataLoader(val_files, batch_size=min(args.batch_size, len(val_files)),
                                      padding=True, **loader_args)
    train_loader.to(device)
    val_loader.to(device)

    net = RecurrentDetector(channels, num_classes, hidden=args.hidden, stride=args.stride).to(device)
    print(f"RecurrentDetector: {net.num_parameters():,} parameters")
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)

    losses = []
    bar = tqdm(total=args.steps, desc="train")
    while len(losses) < args.steps:                       # epochs until enough steps
        for data in train_loader:
            # reset the memory of the recordings that start in this batch and detach the
            # others: the gradient stops here (truncated backpropagation through time)
            net.reset(data["mask_keep_memory"])

            optimizer.zero_grad()

            # the predictions, chronologically over the T bins: a dict of [T, N, ...] tensors
            outputs = [net(x) for x in data["inputs"]]
            predictions = {k: torch.stack([o[k] for o in outputs]) for k in outputs[0]}

            # the loss only on the labeled bins: select the (t, n) pairs, in the same order
            # as predictions[k][labeled]
            labeled = data["frame_is_labeled"]
            if labeled.any():
                slots = [data["labels"][t][n] for t, n in labeled.nonzero().tolist()]
                out_h, out_w = predictions["heatmap_logits"].shape[-2:]
                targets = make_targets(slots, len(slots), out_h, out_w, net.stride, num_classes,
                                       device=device)
                loss = detection_loss({k: v[labeled.to(device)] for k, v in predictions.items()},
                                      targets)

                # backward pass and weight update
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
                optimizer.step()
                losses.append(loss.item())
            else:
                losses.append(float("nan"))           # nothing to learn here; memory carried on
            bar.update(1)
            bar.set_postfix(loss=f"{np.nanmean(losses[-20:]):.3f}")
            if len(losses) >= args.steps:
                break
    bar.close()
    print(loss_curve_summary(losses))

    # held-out recordings: the net's detections vs the input-blind baseline
    metrics = evaluate(net, val_loader, device=device, progress=True)
    baseline = trivial_baseline(train_loader, val_loader, num_classes)
    with open(label_map_path) as f:                  # class id 1..K -> name, for the table
        names = {int(class_lookup[int(i)]): n for i, n in json.load(f).items()
                 if class_lookup[int(i)] > 0}
    print(f"\nheld out: {metrics['num_frames']} labeled frames, {metrics['num_gt']} boxes")
    print(f"{'':24s}{'detector':>10s}{'baseline':>10s}")
    print(f"{'AP@0.5 (mean)':24s}{metrics['ap']:10.3f}{baseline['ap']:10.3f}")
    for k in range(1, num_classes + 1):
        print(f"{'  AP@0.5 ' + names.get(k, str(k)):24s}{metrics['ap_per_class'][k]:10.3f}"
              f"{baseline['ap_per_class'][k]:10.3f}")
    print(f"{'mean best IoU':24s}{metrics['mean_best_iou']:10.3f}{baseline['mean_best_iou']:10.3f}")
    if args.save:
        torch.save(net.state_dict(), args.save)
        print("weights saved to", args.save)


if __name__ == "__main__":
    main()
