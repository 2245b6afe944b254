"""Box files next to tensor files: :func:`split_label` copies a recording's ``_bbox.npy`` into the
output folder, split like its tensor files (``docs/formats.md`` §9)."""

from __future__ import annotations

import os

import numpy as np

from evstream.errors import ArgumentError
from evstream.io import EventNpyReader
from evstream.preprocessing.output_names import remove_quietly, save_npy_atomic
from evstream.timebins import label_bins


def _split_name(box_path: str, output_folder: str, i: int | None) -> str:
    base = os.path.basename(box_path)
    if i is None:
        return os.path.join(output_folder, base)
    stem, ext = (base[:-4], ".npy") if base.endswith(".npy") else (base, "")
    k = stem.rfind("_b")
    name = f"{stem}_{i}{ext}" if k < 0 else f"{stem[:k]}_{i}{stem[k:]}{ext}"
    return os.path.join(output_folder, name)


def split_label(box_path, output_folder, start_ts=0, max_duration=None, n_splits=None) -> list[str]:
    """Copy a box file alongside the tensor files of its recording.

    Boxes with ``t >= start_ts`` are kept with ``t -= start_ts`` and saved (EventBbox dtype, legacy
    field names renamed) under the same basename in ``output_folder``. With ``max_duration``, they
    are split into ``name_{i}_b….npy`` (the index goes before the last ``"_b"``), ``t -= i·max_duration``:
    split ``i`` holds the boxes with ``i·md < t <= (i+1)·md`` (split 0 also those at ``t = 0``), the
    label convention of evstream (a box describes the scene at the end of its bin), so a box exactly
    at a split boundary is kept by the split whose last bin it ends (the original assigns it to the
    next split, where no loader ever reads it). ``n_splits``: number of files to write (default:
    up to the last box); splits without boxes get an empty file. Returns the written paths.
    """
    box_path, output_folder = os.fspath(box_path), os.fspath(output_folder)
    boxes = EventNpyReader(box_path).read_all()
    boxes = boxes[boxes["t"] >= int(start_ts)]
    boxes["t"] -= int(start_ts)
    if max_duration is None:
        out = _split_name(box_path, output_folder, None)
        save_npy_atomic(out, boxes)
        return [out]
    md = int(max_duration)
    if md < 1:
        raise ArgumentError(f"max_duration must be >= 1 µs, got {max_duration}", box_path)
    split_of = np.maximum(label_bins(boxes["t"], 0, md), 0)      # t = 0: split 0
    if n_splits is None:
        n_splits = int(split_of.max()) + 1 if len(boxes) else 1
    written = []
    try:
        for i in range(int(n_splits)):
            part = boxes[split_of == i]
            part["t"] -= i * md
            out = _split_name(box_path, output_folder, i)
            save_npy_atomic(out, part)
            written.append(out)
    except BaseException:
        for out in written:             # all the splits or none
            remove_quietly(out)
        raise
    return written


def label_outputs(box_path, output_folder, n_splits: int | None) -> list[str]:
    """The files :func:`split_label` writes for ``n_splits`` splits (None: not split)."""
    box_path, output_folder = os.fspath(box_path), os.fspath(output_folder)
    if n_splits is None:
        return [_split_name(box_path, output_folder, None)]
    return [_split_name(box_path, output_folder, i) for i in range(int(n_splits))]
