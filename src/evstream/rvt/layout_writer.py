"""Write RVT's preprocessed dataset layout from the original recordings.

::

    OUT/train/ val/ test/                          always created
      <sequence>/
        labels_v2/labels.npz                       members labels (packed box dtype) and
                                                   objframe_idx_2_label_idx (int64)
        labels_v2/timestamps_us.npy                label-frame times, int64 (M,)
        event_representations_v2/<repr name>/
          event_representations[_ds2_nearest].h5   dataset "data", uint8 (N, 20, H', W'),
                                                   chunks (1, 20, H', W'), maxshape (None, ...),
                                                   Blosc (filter 32001) zstd clevel 1 byte-shuffle
          objframe_idx_2_repr_idx.npy              int64 (M,)
          timestamps_us.npy                        window end times, int64 (N,)

As RVT's script: the h5 is written as ``..._in_progress.h5`` and renamed when complete (a
leftover in-progress file is deleted first); an existing final h5 is kept, not recomputed;
``.npy`` / ``.npz`` files that already exist must be equal to the new ones (else
:class:`~evstream.errors.RvtRuleError`); a sequence whose boxes all fail the filters gets no
folder ("No labels after filtering"). In addition, every ``.npy``/``.npz`` is written under a
temporary name and renamed, so an interrupted run leaves no partial file; a rerun resumes; a
sequence that fails (an error while computing or writing its frames) removes its in-progress h5.
Frames stream window by window: memory is one run of windows' events plus
``FRAMES_AHEAD + 2`` frames.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable

import h5py
import hdf5plugin
import numpy as np

from evstream.errors import EvstreamError, MissingFileError, RvtRuleError
from evstream.rvt.config import RvtDataset, dataset_preset, representation_name
from evstream.rvt.sequence import SPLITS, RecordingSequence, SequenceFiles, find_sequences
from evstream.utils.parallel import WORKER_SILENCE_S, run_parallel
from evstream.utils.run_ahead import run_ahead

#: Frames computed ahead of the h5 write, in a background thread (the numba kernels and the
#: reads release the GIL, so the frames of a sequence are computed while the previous ones are
#: compressed and written).
FRAMES_AHEAD = 2
#: RVT's h5 filter: Blosc zstd, clevel 1, byte shuffle (filter 32001, opts (0,0,0,0,1,1,5)).
BLOSC_ZSTD_1 = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)


@dataclass
class SequenceResult:
    """Outcome of one sequence: ``status`` is ``"written"``, ``"kept"`` (final h5 already
    there), ``"no labels"`` (nothing survived the filters) or ``"failed"`` (``error``)."""

    name: str
    split: str
    status: str
    windows: int = 0
    events: int = 0
    seconds: float = 0.0
    error: str = ""
    outputs: list = field(default_factory=list)


def _save_atomic(path: str, save) -> None:
    tmp = path + ".tmp" + (".npz" if path.endswith(".npz") else ".npy")
    save(tmp)
    os.replace(tmp, path)


def _write_or_check_npy(path: str, array: np.ndarray) -> None:
    if os.path.exists(path):
        if not np.array_equal(np.load(path), array):
            raise RvtRuleError("exists with different contents (RVT asserts equality); delete "
                               "the output to rebuild it", path)
        return
    _save_atomic(path, lambda p: np.save(p, array))


def _write_or_check_labels(path: str, labels: np.ndarray, label_index: np.ndarray) -> None:
    if os.path.exists(path):
        with np.load(path) as old:
            same = np.array_equal(old["labels"], labels) and \
                np.array_equal(old["objframe_idx_2_label_idx"], label_index)
        if not same:
            raise RvtRuleError("exists with different contents (RVT asserts equality)", path)
        return
    _save_atomic(path, lambda p: np.savez(p, labels=labels, objframe_idx_2_label_idx=label_index))


def write_frames_h5(path: str, frames_iter, frame_shape: tuple[int, int, int],
                    progress: Callable[[int], None] | None = None) -> int:
    """Write the frames of ``frames_iter`` as RVT's h5 (module docstring); returns N.
    ``progress(frames written)`` is called after each frame."""
    n = 0
    with h5py.File(path, "w") as f:
        data = f.create_dataset("data", shape=(1,) + frame_shape, maxshape=(None,) + frame_shape,
                                chunks=(1,) + frame_shape, dtype=np.uint8, **BLOSC_ZSTD_1)
        for frame in frames_iter:
            if n:
                data.resize(n + 1, axis=0)
            data[n] = frame
            n += 1
            if progress is not None:
                progress(n)
    return n


def write_sequence(files: SequenceFiles, out_dir: str, dataset: str | RvtDataset,
                   mode: str = "duration", *, progress: Callable[[int], None] | None = None,
                   **sequence_options) -> SequenceResult:
    """Write one sequence's folder under ``out_dir/<split>/<name>`` (module docstring);
    ``progress(frames written)`` is called after each frame of its h5."""
    t0 = time.perf_counter()
    dataset = dataset_preset(dataset)
    seq_dir = os.path.join(out_dir, files.split, files.name)
    seq = RecordingSequence(files.events, files.boxes, dataset, files.split == "train", mode,
                            **sequence_options)
    if seq.plan is None:
        print(f"No labels after filtering. Deleting {seq_dir}")
        shutil.rmtree(seq_dir, ignore_errors=True)
        return SequenceResult(files.name, files.split, "no labels")
    plan = seq.plan
    labels_dir = os.path.join(seq_dir, "labels_v2")
    repr_dir = os.path.join(seq_dir, "event_representations_v2", representation_name(mode, seq.nbins))
    os.makedirs(labels_dir, exist_ok=True)
    os.makedirs(repr_dir, exist_ok=True)
    _write_or_check_labels(os.path.join(labels_dir, "labels.npz"), plan.labels.labels,
                           plan.labels.label_index)
    _write_or_check_npy(os.path.join(labels_dir, "timestamps_us.npy"), plan.labels.frames)
    _write_or_check_npy(os.path.join(repr_dir, "objframe_idx_2_repr_idx.npy"), plan.repr_index)
    _write_or_check_npy(os.path.join(repr_dir, "timestamps_us.npy"), plan.ends)
    final = os.path.join(repr_dir, dataset.h5_name)
    outputs = [labels_dir, repr_dir]
    if os.path.exists(final):
        seq.close()
        return SequenceResult(files.name, files.split, "kept", plan.num_windows, 0,
                              time.perf_counter() - t0, outputs=outputs)
    partial = final[:-3] + "_in_progress.h5"
    if os.path.exists(partial):
        os.remove(partial)
    try:
        ring = np.empty((FRAMES_AHEAD + 2,) + seq.frame_shape, np.uint8)
        n = write_frames_h5(partial, run_ahead(seq.iter_frames(out=ring), FRAMES_AHEAD),
                            seq.frame_shape, progress)
        events = seq.events.count
    except BaseException:
        if os.path.exists(partial):        # a failed sequence leaves no partial h5
            os.remove(partial)
        raise
    finally:
        seq.close()
    os.replace(partial, final)
    return SequenceResult(files.name, files.split, "written", n, events,
                          time.perf_counter() - t0, outputs=outputs)


def _run_one(job: dict, report) -> SequenceResult:
    """A :func:`~evstream.utils.parallel.run_parallel` job: one sequence (``job["path"]`` is its
    event file, for messages), reporting ``("frames", frames written)``."""
    files = job["files"]
    try:
        return write_sequence(files, job["out_dir"], job["dataset"], job["mode"],
                              progress=lambda n: report("frames", n), **job["options"])
    except (EvstreamError, OSError) as exc:
        return SequenceResult(files.name, files.split, "failed", error=str(exc))


def precompute_rvt(input_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   dataset: str | RvtDataset = "gen1", mode: str = "duration", jobs: int = 1,
                   progress=None, **sequence_options) -> list[SequenceResult]:
    """RVT's layout for every sequence of ``input_dir/{train,val,test}``, ``jobs`` sequences
    at a time (in that many worker processes of :func:`~evstream.utils.parallel.run_parallel`;
    1: in this process). ``progress(result)`` is called as each sequence finishes. A failed
    sequence (an error, a worker process that died, or one that wrote no frame for
    :data:`~evstream.utils.parallel.WORKER_SILENCE_S` seconds and was stopped) is reported in
    its result; the others complete."""
    input_dir, out_dir = os.fspath(input_dir), os.fspath(out_dir)
    if not os.path.isdir(input_dir):
        raise MissingFileError("no such input folder", input_dir)
    dataset = dataset_preset(dataset)
    sequences, problems = find_sequences(input_dir, dataset)
    for split in SPLITS:
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    results = [SequenceResult(os.path.basename(box), os.path.basename(os.path.dirname(box)),
                              "failed", error=f"{box}: {problem}") for box, problem in problems]

    def on_event(kind, index, payload) -> None:
        if kind not in ("done", "failed"):
            return
        files = sequences[index]
        results.append(payload if kind == "done" else
                       SequenceResult(files.name, files.split, "failed", error=str(payload)))
        if progress is not None:
            progress(results[-1])

    run_parallel(_run_one, [dict(path=s.events, files=s, out_dir=out_dir, dataset=dataset,
                                 mode=mode, options=sequence_options) for s in sequences],
                 int(jobs), on_event, silence_timeout_s=WORKER_SILENCE_S)
    return results
