"""Recurrent training on several GPUs or machines with torch DistributedDataParallel.

Launch one process per GPU with torchrun (CPU works too, with the gloo backend)::

    # one machine, 2 processes; --demo writes a few random DAT recordings to try it
    torchrun --nproc_per_node=2 examples/train_ddp.py --demo /tmp/ddp_demo --epochs 2

    # your recordings (event files streamed, or precomputed .h5 tensor files with --map-style)
    torchrun --nproc_per_node=4 examples/train_ddp.py --files data/train/*.dat --epochs 10

    # two machines: the same command on each, with its --node_rank
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --rdzv_backend=c10d \
        --rdzv_endpoint=host0:29500 examples/train_ddp.py --files ...

    # stop it at any time, then resume exactly where the last checkpoint was taken
    torchrun --nproc_per_node=2 examples/train_ddp.py --demo /tmp/ddp_demo --resume

What it shows:

* the loaders take ``rank`` / ``world_size`` from the process group that torchrun set up: each
  rank reads its share of the recordings (longest first, balanced by duration), every rank
  yields ``len(loader)`` batches (padding items after its recordings end), so DDP's gradient
  all-reduce never waits for a rank that ran out;
* ``loader.set_epoch(epoch)`` before each epoch (new slot order with ``shuffle``);
* a checkpoint with the model, the optimiser and every rank's ``loader.state_dict()`` (gathered
  with ``all_gather_object``), every ``--checkpoint-every`` batches; ``--resume`` continues with
  batch k+1 of the interrupted epoch, memory flags included.
"""

import argparse
import glob
import os

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.sequential_dataset import SequentialDataLoader


class TinyRecurrentNet(nn.Module):
    """conv -> convolutional recurrent state -> per-pixel output; state reset by the mask."""

    def __init__(self, cin, hidden=8):
        super().__init__()
        self.encode = nn.Conv2d(cin, hidden, 3, padding=1)
        self.recur = nn.Conv2d(2 * hidden, hidden, 3, padding=1)
        self.head = nn.Conv2d(hidden, cin, 1)
        self.state = None

    def reset(self, mask_keep_memory):
        if self.state is not None:
            self.state = self.state.detach() * mask_keep_memory   # [N, 1, 1, 1]

    def forward(self, inputs):                    # [T, N, C, H, W]
        outputs = []
        for x in inputs:
            h = torch.relu(self.encode(x))
            if self.state is None or self.state.shape != h.shape:
                self.state = torch.zeros_like(h)
            self.state = torch.tanh(self.recur(torch.cat([h, self.state], 1)))
            outputs.append(self.head(self.state))
        return torch.stack(outputs)


def make_demo_files(folder, count=6, height=32, width=64):
    """Random DAT recordings of uneven lengths (0.3 to 1.3 s)."""
    from evstream.io import DatWriter, EventCD
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"demo_{i}.dat")
        if not os.path.exists(path):
            rng = np.random.default_rng(i)
            duration = 300_000 + 200_000 * i
            n = duration // 20
            ev = np.zeros(n, EventCD)
            ev["t"] = np.sort(rng.integers(0, duration, n))
            ev["x"], ev["y"] = rng.integers(0, width, n), rng.integers(0, height, n)
            ev["p"] = rng.integers(0, 2, n)
            with DatWriter(path, height=height, width=width) as writer:
                writer.write(ev)
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", nargs="*", default=[])
    parser.add_argument("--demo", help="write demo recordings to this folder and train on them")
    parser.add_argument("--map-style", action="store_true",
                        help="SequentialDataLoader (durations known) instead of the streaming "
                             "CDProcessorDataLoader")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--delta-t", type=int, default=50_000)
    parser.add_argument("--num-tbins", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=os.path.join("out", "ddp_checkpoint.pt"),
                        help="checkpoint file (default: out/ddp_checkpoint.pt, ignored by git)")
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)          # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR...
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) \
        if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    files = sorted(f for pattern in args.files for f in glob.glob(pattern))
    if args.demo:
        if rank == 0:
            make_demo_files(args.demo)
        dist.barrier()
        files = make_demo_files(args.demo)
    if not files:
        parser.error("no files: give --files or --demo")

    # rank and world_size default to the process group's; they are spelled out here for clarity
    if args.map_style:
        loader = SequentialDataLoader(files, args.delta_t, "histo",
                                      [args.num_tbins, 2, 32, 64], batch_size=args.batch_size,
                                      num_workers=args.num_workers, padding=True, balanced=True,
                                      rank=rank, world_size=world, seed=args.seed,
                                      shuffle_files=True)
    else:
        loader = CDProcessorDataLoader(files, "delta_t", args.delta_t, 0, None, "histo",
                                       args.num_tbins, args.batch_size,
                                       num_workers=args.num_workers, rank=rank, world_size=world,
                                       seed=args.seed, shuffle=True)
    loader.to(device)

    torch.manual_seed(args.seed)
    model = TinyRecurrentNet(cin=2).to(device)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index]
                                              if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-3)

    start_epoch = 0
    if args.resume and os.path.exists(args.checkpoint):
        checkpoint = torch.load(args.checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = checkpoint["loaders"][rank]                 # this rank's position
        loader.load_state_dict(state)
        finished = state["batches_yielded"] >= state["num_batches"]
        start_epoch = checkpoint["epoch"] + (1 if finished else 0)
        # (the recurrent state is not saved: it restarts from zeros at the resumed batch)

    for epoch in range(start_epoch, args.epochs):
        loader.set_epoch(epoch)          # keeps a loaded resume position of this same epoch
        for batch in loader:
            model.reset(batch["mask_keep_memory"])
            inputs = batch["inputs"]
            # self-supervised toy task: predict the next bin; padding slots are all zeros
            prediction = ddp(inputs[:-1])
            loss = nn.functional.mse_loss(prediction, inputs[1:])
            optimizer.zero_grad()
            loss.backward()              # DDP all-reduces the gradients: same step on every rank
            optimizer.step()
            step = loader.state_dict()["batches_yielded"]
            if step % args.checkpoint_every == 0:
                states = [None] * world
                dist.all_gather_object(states, loader.state_dict())
                if rank == 0:
                    os.makedirs(os.path.dirname(os.path.abspath(args.checkpoint)), exist_ok=True)
                    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "epoch": epoch, "loaders": states}, args.checkpoint)
                    print(f"epoch {epoch} batch {step}/{len(loader)} loss {loss.item():.5f} "
                          f"(checkpoint)", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
