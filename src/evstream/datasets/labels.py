"""Label files of the public datasets: where a recording's labels are and how to read them.

| dataset | recording | label file |
|---|---|---|
| Gen1, 1Mpx, eTraM | ``X_td.dat``, ``X_td.h5``, ``X_td.dat.h5`` (RVT), ``X.dat``, ``X.h5``, ``X.raw`` | ``X_bbox.npy`` |
| DSEC-Detection | ``SEQ/events/left/events.h5`` | ``SEQ/object_detections/left/tracks.npy`` |

``_bbox.npy`` holds Prophesee box arrays (legacy ``ts`` / ``confidence`` field names are
renamed); DSEC's ``tracks.npy`` holds the same fields plus ``track_id`` with times on the
absolute clock, i.e. the events' stored ``t`` plus the events file's ``t_offset``. On read, such
times are moved onto the events' clock (``t - t_offset``) so that boxes and events line up as
every loader expects.
"""

from __future__ import annotations

import os

import numpy as np

from evstream.errors import ArgumentError, FileFormatError, MissingFileError
from evstream.io import EventBbox
from evstream.io.npy import convert_fields

#: Recording endings whose labels are ``<stem>_bbox.npy``, longest first.
BBOX_ENDINGS = ("_td.dat.h5", "_td.h5", "_td.dat", ".dat", ".h5", ".hdf5", ".raw")
#: DSEC-Detection: events and labels relative to the sequence folder.
DSEC_EVENTS = os.path.join("events", "left", "events.h5")
DSEC_TRACKS = os.path.join("object_detections", "left", "tracks.npy")


def label_file_path(recording_path) -> str:
    """The label file of a recording (table in the module docstring)."""
    path = os.fspath(recording_path)
    if path.endswith(os.sep + DSEC_EVENTS) or path == DSEC_EVENTS:
        return os.path.join(path[: len(path) - len(DSEC_EVENTS)], DSEC_TRACKS)
    for ending in BBOX_ENDINGS:
        if path.endswith(ending):
            return path[: len(path) - len(ending)] + "_bbox.npy"
    raise ArgumentError("unknown file ending: can't name its label file (expected _td.dat, "
                        "_td.h5, _td.dat.h5, .dat, .h5, .hdf5, .raw or DSEC's "
                        "events/left/events.h5)", path)


def is_tracks_file(label_path) -> bool:
    """True for a DSEC-Detection ``tracks.npy`` (times on the absolute clock)."""
    return os.path.basename(os.fspath(label_path)) == "tracks.npy"


def label_time_offset(label_path, recording_path, label_times: np.ndarray) -> int:
    """µs to subtract from ``label_times`` to put them on the recording's clock: the events
    file's ``t_offset`` for a ``tracks.npy`` whose times are all at or after it, else 0.

    A ``tracks.npy`` with some times before and some after a non-zero ``t_offset`` raises
    :class:`~evstream.errors.FileFormatError` (neither clock fits)."""
    if not is_tracks_file(label_path) or recording_path is None or not len(label_times):
        return 0
    from evstream.io.hdf5_events import read_t_offset
    t_offset = read_t_offset(recording_path)
    if t_offset <= 0:
        return 0
    low, high = int(np.min(label_times)), int(np.max(label_times))
    if low >= t_offset:
        return t_offset
    if high < t_offset:
        return 0
    raise FileFormatError(f"label times span {low}..{high} µs across the events' t_offset "
                          f"{t_offset} µs: neither the absolute nor the events' clock",
                          label_path)


def read_label_file(label_path, recording_path=None, require_score: bool = False) -> np.ndarray:
    """A label file as a new EventBbox array in file order, on the recording's clock (see
    :func:`label_time_offset`; pass ``recording_path`` for DSEC's ``tracks.npy``).
    ``require_score``: the file must have ``class_confidence`` (or legacy ``confidence``), as
    detections do; otherwise a missing field is 0."""
    label_path = os.fspath(label_path)
    if not os.path.isfile(label_path):
        raise MissingFileError("label file not found", label_path)
    try:
        boxes = np.load(label_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"not a readable .npy array ({exc})", label_path) from None
    names = boxes.dtype.names or ()
    if boxes.ndim != 1 or not ({"t", "ts"} & set(names)) or not {"x", "y", "w", "h"} <= set(names):
        raise FileFormatError(f"expected a 1-D box array with t (or ts), x, y, w, h; got shape "
                              f"{boxes.shape} dtype {boxes.dtype}", label_path)
    if require_score and not {"class_confidence", "confidence"} & set(names):
        raise FileFormatError(f"detection boxes need a class_confidence field (the score), got "
                              f"{boxes.dtype}", label_path)
    out = convert_fields(boxes, EventBbox)
    out["t"] -= label_time_offset(label_path, recording_path, out["t"])
    return out
