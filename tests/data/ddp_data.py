"""Tiny recordings of uneven lengths shared by test_distributed.py and test_resume.py."""

from __future__ import annotations

import os

import numpy as np
import torch

from seqloader_data import synthetic_events, write_dat, write_raw

HEIGHT, WIDTH = 8, 16
DELTA_T = 100          # µs per bin
NUM_TBINS = 2          # chunk = 200 µs
#: end times (µs) of the recordings: uneven, so ranks and slots end at different steps
DURATIONS = [2300, 900, 1700, 400, 1250, 650, 1900]


def make_recordings(folder, durations=DURATIONS):
    """DAT and EVT2 RAW recordings (alternating), 16x8, ending at ``durations`` (one event at
    t = 0 and one at the end, so that RAW times are not shifted)."""
    paths = []
    for i, duration in enumerate(durations):
        ev = synthetic_events(duration, rate_per_ms=400, height=HEIGHT, width=WIDTH, seed=i)
        ev["t"][0], ev["t"][-1] = 0, duration - 1
        ev.sort(order="t")
        if i % 2:
            paths.append(write_dat(os.path.join(folder, f"rec{i}.dat"), ev, HEIGHT, WIDTH))
        else:
            paths.append(write_raw(os.path.join(folder, f"rec{i}.raw"), ev, HEIGHT, WIDTH,
                                   fmt="evt2"))
    return paths


def flip_plane(plane):
    """A random transform: flips the plane with probability 1/2 (seeded per recording)."""
    return torch.flip(plane, dims=[-1]) if torch.rand(1).item() < 0.5 else plane


def batch_key(batch):
    """What a batch carries, in comparable form: inputs, keep-memory flags, (path, start) per
    slot (None for padding), frame_is_labeled."""
    infos = tuple(None if meta.is_padding() else (meta.path, int(start))
                  for meta, start, _ in batch["video_infos"])
    return (batch["inputs"].clone(), tuple(batch["mask_keep_memory"].flatten().tolist()), infos,
            batch["frame_is_labeled"].clone())


def same_batches(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and x[1] == y[1] and x[2] == y[2] and torch.equal(x[3], y[3])
        for x, y in zip(a, b))


def ddp_worker(rank, world_size, init_file, files, out_dir):
    """One rank of the real gloo test: both loaders with rank/world_size taken from the process
    group, one all_reduce per batch (a rank that stopped early would make the others hang)."""
    import datetime
    import json

    import torch.distributed as dist

    from evstream.data.cd_processor_dataset import CDProcessorDataLoader
    from evstream.data.sequential_dataset import SequentialDataLoader

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=60))
    try:
        result = {}
        loaders = {
            "sequential": SequentialDataLoader(files, DELTA_T, "histo",
                                               [NUM_TBINS, 2, HEIGHT, WIDTH], batch_size=2,
                                               num_workers=0, padding=True, seed=3,
                                               shuffle_files=True),
            "stream": CDProcessorDataLoader(files, "delta_t", DELTA_T, 0, None, "histo",
                                            NUM_TBINS, 2, num_workers=0, seed=3, shuffle=True),
        }
        for name, loader in loaders.items():
            loader.set_epoch(1)
            chunks, sums = [], []
            for batch in loader:
                total = torch.ones(1)
                dist.all_reduce(total)            # every rank must reach every step
                sums.append(int(total.item()))
                chunks += [(m.path, int(s)) for m, s, _ in batch["video_infos"]
                           if not m.is_padding()]
            result[name] = {"len": len(loader), "batches": len(sums), "sums": sums,
                            "chunks": chunks, "rank": loader.rank,
                            "world_size": loader.world_size}
        dist.barrier()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()
