"""What the sequential and the streaming loaders share: the label stub, ``collate_fn`` and the
drawing of batches (``metavision_ml.data.sequential_dataset_common``).

:func:`show_dataloader` turns any loader that yields the batch dict of
:mod:`evstream.data.sequential_dataset` into a stream of RGB grids, one per time bin;
:func:`write_frames` saves such a stream as an mp4 video and/or PNG files.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from evstream.data.sequential_dataset import collate_fn, load_labels_stub
from evstream.errors import ArgumentError

__all__ = ["load_labels_stub", "collate_fn", "show_dataloader", "write_frames", "render_video"]

#: Start-of-sequence marker: value written in channel 0 of the top-left 10x10 pixels.
MARKER_VALUE = 222
#: File-name text: OpenCV Hershey plain font, scale 1.2, this RGB colour.
TEXT_COLOR = (50, 240, 12)


def _as_numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _name_of(meta) -> str:
    path = getattr(meta, "path", None)
    if getattr(meta, "padding", False) or path is None:
        return "PADDING"
    return os.path.basename(os.fspath(path))


def _is_padding(meta) -> bool:
    return bool(getattr(meta, "padding", False)) or getattr(meta, "path", "") is None


def show_dataloader(dataloader, height, width, vis_func, viz_labels=None, *rest, batch_size=None):
    """Yields one RGB uint8 grid per time bin of every batch of ``dataloader``.

    Also accepts the tutorial's 6-argument form ``(dataloader, height, width, batch_size,
    vis_func, viz_labels)``; the batch size always comes from the batches themselves.

    Grid: ``ceil(sqrt(N))`` columns, ``ceil(N / columns)`` rows of ``height x width`` cells.
    Each cell is ``vis_func(inputs[t, i])``, then ``viz_labels(cell, labels[t][i])`` if given
    (not for padding items), the top-left 10x10 pixels set to 222 in channel 0 on bins 0 and 1
    of a new sequence (keep_memory 0), and the file name near the bottom. Each yield is a new
    array.
    """
    if isinstance(vis_func, (int, np.integer)) and not callable(vis_func):
        batch_size, vis_func, viz_labels = vis_func, viz_labels, (rest[0] if rest else None)
    elif rest:
        raise ArgumentError(f"show_dataloader: unexpected extra arguments {rest!r}")
    if not callable(vis_func):
        raise ArgumentError(f"show_dataloader: vis_func must be callable, got {vis_func!r}")
    height, width = int(height), int(width)
    for batch in dataloader:
        inputs = batch["inputs"]
        num_tbins, n_items = int(inputs.shape[0]), int(inputs.shape[1])
        size_x = int(math.ceil(math.sqrt(n_items)))
        size_y = int(math.ceil(n_items / size_x))
        keep = _as_numpy(batch["mask_keep_memory"]).reshape(-1)
        infos = batch["video_infos"]
        labels = batch.get("labels")
        for t in range(num_tbins):
            frame = np.zeros((size_y * height, size_x * width, 3), dtype=np.uint8)
            for i in range(n_items):
                meta = infos[i][0]
                img = np.ascontiguousarray(vis_func(_as_numpy(inputs[t, i])), dtype=np.uint8)
                if img.shape[:2] != (height, width):
                    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)
                if img.ndim == 2:
                    img = np.repeat(img[..., None], 3, axis=2)
                if not img.flags.writeable or img.base is not None:
                    img = img.copy()
                if viz_labels is not None and labels is not None and not _is_padding(meta):
                    img = viz_labels(img, labels[t][i])
                if t <= 1 and keep[i] == 0:
                    img[:10, :10, 0] = MARKER_VALUE
                cv2.putText(img, _name_of(meta), (int(0.05 * width), int(0.94 * height)),
                            cv2.FONT_HERSHEY_PLAIN, 1.2, TEXT_COLOR)
                row, col = divmod(i, size_x)
                frame[row * height:(row + 1) * height, col * width:(col + 1) * width] = img
            yield frame


def write_frames(frames, path=None, fps=20.0, png_dir=None, max_frames=None, fourcc="mp4v") -> int:
    """Writes RGB uint8 frames to a video file (``path``) and/or numbered PNGs (``png_dir``).

    Returns the number of frames written. The video size is that of the first frame; frames
    of another size are resized to it.
    """
    if path is None and png_dir is None:
        raise ArgumentError("write_frames needs a video path or a png_dir")
    if png_dir is not None:
        os.makedirs(png_dir, exist_ok=True)
    writer = None
    size = None
    count = 0
    try:
        for frame in frames:
            if max_frames is not None and count >= max_frames:
                break
            bgr = np.ascontiguousarray(frame[..., ::-1])
            if size is None:
                size = (bgr.shape[1], bgr.shape[0])
                if path is not None:
                    parent = os.path.dirname(os.fspath(path))
                    if parent:
                        os.makedirs(parent, exist_ok=True)
                    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*fourcc),
                                             float(fps), size)
                    if not writer.isOpened():
                        raise ArgumentError(f"OpenCV cannot write a {fourcc!r} video here", path)
            elif (bgr.shape[1], bgr.shape[0]) != size:
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_NEAREST)
            if writer is not None:
                writer.write(bgr)
            if png_dir is not None:
                cv2.imwrite(os.path.join(png_dir, f"frame_{count:06d}.png"), bgr)
            count += 1
    finally:
        if writer is not None:
            writer.release()
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    return count


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
    from functools import partial

    from evstream.data import box_processing as box_api
    from evstream.data._sources import file_kind, read_tensor_file_info
    from evstream.data.scheduler import _get_original_size_file
    from evstream.data.sequential_dataset import SequentialDataLoader
    from evstream.detection_tracking.display_frame import draw_box_events
    from evstream.preprocessing import get_preprocess_dict

    from evstream.data.scheduler import _get_durations

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
            height, width = read_tensor_file_info(first).shape[1:]
        else:
            height, width = _get_original_size_file(first)
    channels = get_preprocess_dict(preprocess_function_name)["cin"]
    if file_kind(files[0]) == "h5":
        channels = read_tensor_file_info(files[0]).shape[0]
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
    from evstream.data.box_processing import load_label_map
    return list(load_label_map(label_map_path).values())
