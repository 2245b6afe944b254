"""Train on a public event-camera detection dataset straight from its downloaded folder.

Usage (one command per dataset; ROOT holds train/ val/ test/ as downloaded)::

    python examples/train_public_dataset.py gen1  ROOT                 # *_td.dat + *_bbox.npy
    python examples/train_public_dataset.py gen4  ROOT --downsample 2  # 1Mpx: *_td.dat or RVT's *_td.h5
    python examples/train_public_dataset.py etram ROOT --downsample 2  # *_td.h5 (or .raw) + *_bbox.npy
    python examples/train_public_dataset.py dsec  ROOT                 # SEQ/events/left/events.h5 + tracks.npy

What it does:

1. ``evstream.datasets.list_dataset(ROOT)``: the recordings and label files of each split.
2. The dataset's preset (``evstream.datasets.PRESETS``): sensor size, the classes trained on
   (eTraM's remapped to 1Mpx's pedestrian / two wheeler / car) and the paper's box filter, which
   ``box_processing.load_boxes(..., box_filter=...)`` applies to the training labels.
3. A ``SequentialDataLoader`` over the event files themselves (tensors built on the fly:
   ``histo`` at the sensor size divided by ``--downsample``), a small
   :class:`evstream.demo.RecurrentDetector` trained with the tutorial's truncated-BPTT loop.
4. COCO mAP (``evstream.metrics``) on the labelled bins of the held-out split (``val``, else
   ``test``). For the papers' protocol on full recordings, write each recording's detections
   as ``NAME_bbox.npy`` (EventBbox, sensor coordinates, ``class_confidence`` = score) and run
   ``evstream evaluate GT_DIR DET_DIR --dataset NAME``.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch

from evstream.data import SequentialDataLoader
from evstream.data import box_processing as box_api
from evstream.datasets import list_dataset, preset
from evstream.demo import RecurrentDetector, evaluate, loss_curve_summary, train
from evstream.demo.training import coco_detection_metrics
from evstream.metrics import format_metrics


def build_loader(files, p, args, shuffle):
    height, width = (s // args.downsample for s in p.sensor_hw)
    # the filter sees the boxes in sensor coordinates, before they are rescaled to the tensor
    load = partial(box_api.load_boxes, class_lookup=p.training_lookup(), box_filter=p.box_filter)
    return SequentialDataLoader(files, args.delta_t, "histo", [args.num_tbins, 2, height, width],
                                load_labels=load, batch_size=min(args.batch_size, len(files)),
                                num_workers=args.num_workers, padding=True,
                                shuffle_files=shuffle, seed=args.seed)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("gen1", "gen4", "etram", "dsec"))
    parser.add_argument("root", help="dataset folder with train/ val/ test/")
    parser.add_argument("--downsample", type=int, default=1, choices=(1, 2, 4),
                        help="tensor size = sensor size / this (boxes are filtered at sensor size)")
    parser.add_argument("--delta-t", type=int, default=50_000, help="time bin (us)")
    parser.add_argument("--num-tbins", type=int, default=5, help="T: bins per batch (BPTT)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--eval-batches", type=int, help="bound the held-out pass")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    p = preset(args.dataset)
    folder = list_dataset(args.root)
    held_out = "val" if folder.splits.get("val") else "test"
    print(f"{args.dataset}: {len(folder.files('train'))} train / "
          f"{len(folder.files(held_out))} {held_out} recordings ({folder.layout} layout); "
          f"classes {', '.join(p.train_classes)}; filter {p.box_filter}")
    net = RecurrentDetector(2, len(p.train_classes), hidden=args.hidden)
    losses = train(lambda: build_loader(folder.files("train"), p, args, True), net, args.steps,
                   lr=args.lr, device=args.device)
    print(loss_curve_summary(losses))
    metrics = evaluate(net, build_loader(folder.files(held_out), p, args, False),
                       device=args.device, max_batches=args.eval_batches,
                       return_predictions=True)
    height, width = (s // args.downsample for s in p.sensor_hw)
    coco = coco_detection_metrics(metrics["predictions"], metrics["ground_truths"],
                                  p.train_classes, height, width)
    print(format_metrics(coco, title=f"{held_out}: COCO on {metrics['num_frames']} labelled "
                                     f"bins, {metrics['num_gt']} boxes"))
    return coco


if __name__ == "__main__":
    main()
