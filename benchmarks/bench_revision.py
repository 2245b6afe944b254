"""The streaming loader end to end against an earlier revision of evstream, in one run (prints a
markdown table; asserts nothing).

Issue 17's loader targets are stated against the rate "today", when the issue was filed:
revision ``7834b0f`` (the last commit before its work; default ``BASE``). This script checks that
revision out into a temporary git worktree and runs the same epoch of
:class:`~evstream.data.cd_processor_dataset.CDProcessorDataLoader` (bench_stream.py's RAW EVT 3.0
recordings, 1280x720 at ~9 Mev/s, ``histo`` at 640x360, 50 ms bins, T = 5, B = 4) with that
revision's sources and with this tree's, each in a fresh process, interleaved, best of ``R``
epochs after one that fills the caches (its batches are hashed: the digest column shows whether
both revisions give the same tensors, bit for bit).

Run from a git checkout: ``python benchmarks/bench_revision.py [BASE [R]]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

BASE = "7834b0f"
SECONDS = 3
WORKERS = (1, 2)

#: one measurement, run in a fresh interpreter with the revision's ``src`` first on the path
EPOCH_SCRIPT = """
import hashlib, sys, time
import torch
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
paths, workers, rounds = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
best, digest = float("inf"), None
for k in range(rounds + 1):
    loader = CDProcessorDataLoader(paths, "delta_t", 50_000, 0, None, "histo", 5, 4,
                                   num_workers=workers, height=360, width=640)
    h, batches, start = hashlib.sha1(), 0, time.perf_counter()
    for batch in loader:
        batches += 1
        if k == 0:
            h.update(batch["inputs"].numpy().tobytes())
    wall = time.perf_counter() - start
    if k == 0:
        digest = h.hexdigest()[:12]
    else:
        best = min(best, wall)
print(batches, best, digest)
"""


def run_epochs(src: str, paths: list[str], workers: int, rounds: int) -> tuple[int, float, str]:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", EPOCH_SCRIPT, ",".join(paths), str(workers),
                          str(rounds)], env=env, capture_output=True, text=True, check=True)
    batches, wall, digest = out.stdout.split()
    return int(batches), float(wall), digest


def main(base: str = BASE, rounds: int = 3) -> None:
    import bench_stream
    from bench_peers import cpu_model

    bench_stream.SECONDS = SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        worktree = os.path.join(tmp, "base")
        made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                               worktree, base], capture_output=True, text=True)
        if made.returncode:
            print(f"\nbench_revision skipped: no git checkout with revision {base} "
                  f"({made.stderr.strip()})")
            return
        try:
            paths, n_events = bench_stream.write_recordings(tmp)
            sources = {f"{base} (issue 17 filed)": os.path.join(worktree, "src"),
                       "this tree": str(ROOT / "src")}
            best: dict = {}
            for _ in range(2):                             # interleaved
                for workers in WORKERS:
                    for label, src in sources.items():
                        batches, wall, digest = run_epochs(src, paths, workers, rounds)
                        key = (workers, label)
                        if key not in best or wall < best[key][1]:
                            best[key] = (batches, wall, digest)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", worktree],
                           check=False)
    print(f"\n### CDProcessorDataLoader end to end against revision {base}, {cpu_model()}\n")
    print(f"{len(paths)} RAW EVT 3.0 recordings x {SECONDS} s ({n_events / 1e6:.1f} M events), "
          f"histo [5, 4, 2, 360, 640] float32 batches; best of 2 x {rounds} epochs\n")
    print("| workers | revision | batches | wall s | Mev/s | vs the base revision | vs 1 worker "
          "(same revision) | batch digest |")
    print("|---|---|---|---|---|---|---|---|")
    for workers in WORKERS:
        for label in sources:
            batches, wall, digest = best[(workers, label)]
            base_wall = best[(workers, next(iter(sources)))][1]
            one = best[(1, label)][1]
            print(f"| {workers} | {label} | {batches} | {wall:.2f} | {n_events / wall / 1e6:.0f} | "
                  f"x{base_wall / wall:.2f} | x{one / wall:.2f} | {digest} |")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or [BASE]), *[int(a) for a in sys.argv[2:3]])
