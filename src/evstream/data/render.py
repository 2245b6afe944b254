"""What ``evstream render`` does: play recordings or tensor files with a
:class:`~evstream.data.sequential_dataset.SequentialDataLoader` and write its
:meth:`~evstream.data.sequential_dataset.SequentialDataLoader.show` grids to an mp4 video and/or
PNG files (:func:`render_video`), with a time bin chosen for short recordings
(:func:`render_delta_t`).
"""

from __future__ import annotations

import math
import os
from functools import partial

from evstream.data import box_processing as box_api
from evstream.data._sources import file_kind
from evstream.data.scheduler import _get_durations, _get_original_size_file
from evstream.data.sequential_dataset import SequentialDataLoader
from evstream.data.sequential_dataset_common import load_labels_stub
from evstream.detection_tracking.display_frame import draw_box_events
from evstream.errors import ArgumentError
from evstream.preprocessing import get_preprocess_dict
from evstream.preprocessing.tensor_file import read_tensor_attrs

__all__ = ["RENDER_DELTA_T", "render_delta_t", "render_video"]


#: ``evstream render``'s time bin when the recordings are long enough (µs)
RENDER_DELTA_T = 50_000


def render_delta_t(files, durations, num_tbins: int,
                   default: int = RENDER_DELTA_T) -> tuple[int, str | None]:
    """The time bin ``evstream render`` uses when none is given: ``default``, unless the
    shortest of ``files`` (``durations`` in µs, as :func:`~evstream.data.scheduler.get_duration`
    measures them) is shorter than one chunk of ``num_tbins`` bins (the loader never plays such
    a file); then the longest whole-millisecond bin (whole µs under 1 ms) with which the shortest
    file fills one chunk. Returns ``(delta_t, note)``; ``note`` says what was chosen and why,
    None when ``default`` is kept.

    Raises :class:`~evstream.errors.ArgumentError` when a file is shorter than ``num_tbins`` µs
    (no bin length can show it)."""
    shortest, path = min(zip((int(d) for d in durations), (os.fspath(f) for f in files)))
    if shortest >= num_tbins * default:
        return default, None
    if shortest < num_tbins:
        raise ArgumentError(f"{os.path.basename(path)} lasts {shortest} us: too short to render "
                            f"{num_tbins} time bins", path)
    delta_t = shortest // num_tbins
    if delta_t >= 1000:
        delta_t -= delta_t % 1000
    note = (f"{os.path.basename(path)} lasts {shortest / 1000:.1f} ms, less than {num_tbins} bins "
            f"of {default} us: using --delta-t {delta_t} (set --delta-t or --num-tbins to choose)")
    return delta_t, note


def render_video(files, path=None, png_dir=None, preprocess_function_name="histo", delta_t=50000,
                 num_tbins=5, height=None, width=None, batch_size=None, label_map_path=None,
                 classes=None, padding=True, fps=None, max_frames=None, preprocess_kwargs=None,
                 num_workers=0, say=None):
    """What ``evstream render`` does: plays ``files`` with a :class:`SequentialDataLoader` and
    writes its :meth:`~SequentialDataLoader.show` grids to ``path`` (mp4) and/or ``png_dir``.

    ``delta_t=None``: :func:`render_delta_t` picks it (50 ms, shorter for short recordings) and
    ``say(note)`` is called with what it picked. Defaults: ``height x width`` = the first file's
    tensor size (stored size of a tensor file,
    sensor size of a recording); ``batch_size`` = ``min(4, len(files))``; every file played to
    its end (``padding``). With ``label_map_path``, each file's ``_bbox.npy`` boxes of
    ``classes`` (default: all) are drawn. Returns ``(frames written, (grid height, grid width))``.
    """
    files = [os.fspath(f) for f in files]
    if not files:
        raise ArgumentError("render needs at least one file")
    durations = []                                  # [] = the loader measures them
    if delta_t is None:
        durations = _get_durations(files)           # measured once, for both
        delta_t, note = render_delta_t(files, durations, num_tbins)
        if note and say is not None:
            say(note)
    if height is None or width is None:
        first = files[0]
        if file_kind(first) == "h5":
            height, width = read_tensor_attrs(first).shape[1:]
        else:
            height, width = _get_original_size_file(first)
    channels = get_preprocess_dict(preprocess_function_name)["cin"]
    if file_kind(files[0]) == "h5":
        channels = read_tensor_attrs(files[0]).shape[0]
    load_labels, viz_labels = load_labels_stub, None
    if label_map_path is not None:
        lookup = box_api.create_class_lookup(label_map_path, list(classes or []))
        names = list(classes) if classes else [n for n in _label_names(label_map_path) if n != "empty"]
        load_labels = partial(box_api.load_boxes, class_lookup=lookup)
        viz_labels = partial(draw_box_events, label_map=["background"] + names)
    loader = SequentialDataLoader(files, delta_t, preprocess_function_name,
                                  [num_tbins, channels, height, width], load_labels=load_labels,
                                  batch_size=batch_size or min(4, len(files)), durations=durations,
                                  num_workers=num_workers, padding=padding,
                                  preprocess_kwargs=dict(preprocess_kwargs or {}))
    n = loader.save_video(path, viz_labels=viz_labels, fps=fps, png_dir=png_dir,
                          max_frames=max_frames)
    b = loader.batch_size
    cols = int(math.ceil(math.sqrt(b)))
    return n, (int(math.ceil(b / cols)) * height, cols * width)


def _label_names(label_map_path) -> list:
    return list(box_api.load_label_map(label_map_path).values())
