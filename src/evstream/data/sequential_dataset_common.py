"""The batch contract of both loaders (``metavision_ml.data.sequential_dataset_common``).

Both loaders, :class:`~evstream.data.sequential_dataset.SequentialDataLoader` (map-style) and
:class:`~evstream.data.cd_processor_dataset.CDProcessorDataLoader` (streaming), make the same
*item* per recording and chunk::

    (tensor [T, C, H, W], labels (T entries), keep_memory (float), frame_is_labeled (bool [T]),
     (FileMetadata, start_us, duration_us))

and batch ``N`` of them with :func:`collate_fn` into the same dict (:data:`BATCH_KEYS`):

| key | content |
|---|---|
| ``inputs`` | ``[T, N, C, H, W]`` (the items' dtype; the loaders give float32) |
| ``labels`` | ``T`` lists of ``N`` labels (what ``load_labels`` returns per bin) |
| ``mask_keep_memory`` | float32 ``[N, 1, 1, 1]``: 0 at the first chunk of a recording, else 1 |
| ``frame_is_labeled`` | bool ``[T, N]`` |
| ``video_infos`` | ``N`` tuples ``(FileMetadata, start_us, duration_us)`` |

A slot without data gets a :func:`padding_item` (zeros, a PADDING ``FileMetadata``); what its
labels and ``keep_memory`` are differs between the loaders, as in the original
(:data:`SEQUENTIAL_PADDING`, :data:`STREAM_PADDING`). :func:`load_labels_stub` is the label loader
of unlabelled data.

:func:`show_dataloader` turns any loader that yields this batch dict into a stream of RGB grids,
one per time bin; :func:`write_frames` saves such a stream as an mp4 video and/or PNG files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from evstream.data.batch_buffers import in_place_batch, is_row_of
from evstream.data.scheduler import FileMetadata
from evstream.errors import ArgumentError
from evstream.utils.arrays import as_numpy, close_if_closable
from evstream.utils.recycled import RecycledArrays

__all__ = ["BATCH_KEYS", "CPU_KEYS", "load_labels_stub", "collate_fn", "StackedItems",
           "PaddingRule", "SEQUENTIAL_PADDING", "STREAM_PADDING", "padding_item",
           "show_dataloader", "write_frames"]

#: The keys of a batch dict, in order.
BATCH_KEYS = ("inputs", "labels", "mask_keep_memory", "frame_is_labeled", "video_infos")
#: The keys whose values stay on the CPU when a loader moves its batches to a device.
CPU_KEYS = ("labels", "frame_is_labeled", "video_infos")


def load_labels_stub(metadata, start_time, duration, tensor):
    """This is a stub implementation of a function to load label data.

    This function doesn't actually load anything and should be passed to the SequentialDataset for
        self-supervised training when no actual labelling is required.

    Args:
        metadata (FileMetadata): This class contains information about the sequence that is being read.
            Ideally the path for the labels should be deducible from `metadata.path`.
        start_time (int): Time in us in the file at which we start reading.
        duration (int): Duration in us of the data we need to read from said file.
        tensor (torch.tensor): Torch tensor of the feature for which labels are loaded.
            It can be used for instance to filter out the labels in area where there is no events.
    Returns:
        labels should be indexable by time bin (to differentiate the labels of each time bin). It could
            therefore be a list of length *num_tbins*.
        (boolean nd array): This boolean mask array of *length* num_tbins indicates
            whether the frame contains a label. It is used to differentiate between time_bins that actually
            contain an empty label (for instance no bounding boxes) from time bins that weren't labeled due
            to cost constraints. The latter timebins shouldn't contribute to supervised losses used during
            training.
    """
    num = len(range(0, duration, metadata.delta_t))
    return [torch.empty(0)] * num, np.zeros(num, dtype=bool)


# The original's API (and its tutorial's ``help(load_labels_stub)``) places the stub in
# ``sequential_dataset``, which re-exports it; it is the same object there (pickled by that name).
load_labels_stub.__module__ = "evstream.data.sequential_dataset"


class StackedItems(list):
    """The items of one batch whose tensors are already stacked in :attr:`inputs`
    (``[T, N, C, H, W]``; each item's tensor is a view of its slot): :func:`collate_fn` passes
    ``inputs`` on without copying."""

    inputs = None


#: torch dtypes that numpy holds too (bfloat16, for one, it does not)
_NUMPY_DTYPES = {dt: torch.empty(0, dtype=dt).numpy().dtype
                 for dt in (torch.float16, torch.float32, torch.float64, torch.uint8, torch.int8,
                            torch.int16, torch.int32, torch.int64, torch.bool)}


#: the recycled arrays of the batches :func:`stack_inputs` makes in this process
BATCH_BUFFERS = RecycledArrays()


def stack_inputs(tensors, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[T, N, C, H, W]`` from ``N`` items ``[T, C, H, W]`` (as ``dtype``, default the items'):

    * when some items are already rows of a batch array that the stream loader's workers
      wrote in place (:func:`~evstream.data.batch_buffers.in_place_batch`) and ``dtype`` is
      its dtype or None, that array, with the other items copied into their rows;
    * else, when the items are CPU tensors of one dtype and shape that need no gradient,
      numpy copies whole planes into an array of :data:`BATCH_BUFFERS` (a batch array nobody
      refers to any more, else a new one: no fresh pages to fault in; about 8x faster than
      ``torch.stack`` for these shapes, see ``benchmarks/bench_stream.py``);
    * ``torch.stack`` otherwise."""
    base = in_place_batch(tensors)
    if base is not None and dtype in (None, base.dtype):
        for i, t in enumerate(tensors):
            if not is_row_of(t, base, i):
                base[:, i].copy_(torch.as_tensor(t))
        return base
    first = tensors[0]
    if isinstance(first, torch.Tensor) and first.dtype in _NUMPY_DTYPES and \
            (dtype or first.dtype) in _NUMPY_DTYPES and all(
            isinstance(t, torch.Tensor) and t.dtype == first.dtype and t.shape == first.shape
            and t.device.type == "cpu" and not t.requires_grad for t in tensors):
        inputs = BATCH_BUFFERS.empty((first.shape[0], len(tensors)) + tuple(first.shape[1:]),
                                     _NUMPY_DTYPES[dtype or first.dtype])
        for i, t in enumerate(tensors):
            inputs[:, i] = t.numpy()
        return torch.from_numpy(inputs)
    stacked = torch.stack([torch.as_tensor(t) for t in tensors], dim=1)
    return stacked if dtype is None else stacked.to(dtype)


def collate_fn(data_list):
    """Batches ``N`` items into the batch dict of the module docstring: ``inputs``
    ``[T, N, C, H, W]``, ``labels`` ``T`` lists of ``N``, ``mask_keep_memory`` float32
    ``[N, 1, 1, 1]``, ``frame_is_labeled`` bool ``[T, N]``, ``video_infos`` ``N`` tuples
    ``(FileMetadata, start_us, duration_us)``.

    Items that arrive already stacked (:class:`StackedItems`, as
    :meth:`SequentialDataset.__getitems__ <evstream.data.sequential_dataset.SequentialDataset.__getitems__>`
    makes them) are not copied; any other item tensors are copied into a new tensor, so the
    items' buffers may be reused once this returns.
    """
    tensors, labels, keep_memory, frame_is_labeled, infos = zip(*data_list)
    inputs = getattr(data_list, "inputs", None)
    if inputs is None or inputs.shape[1] != len(tensors):
        inputs = stack_inputs(tensors)
    num_tbins = inputs.shape[0]
    batch_labels = [[item[t] for item in labels] for t in range(num_tbins)]
    mask = torch.tensor(keep_memory, dtype=torch.float32).view(-1, 1, 1, 1)
    masks = np.stack([np.asarray(m, dtype=bool) for m in frame_is_labeled], axis=1)
    return {"inputs": inputs, "labels": batch_labels, "mask_keep_memory": mask,
            "frame_is_labeled": torch.from_numpy(masks), "video_infos": tuple(infos)}


@dataclass(frozen=True)
class PaddingRule:
    """What a padding item holds besides zeros: its ``keep_memory`` and the label of each bin
    (one object, shared by the ``T`` bins)."""

    keep_memory: float
    label: object


#: :class:`SequentialDataLoader`'s padding, as the original's: labels NaN, keep_memory 1.
SEQUENTIAL_PADDING = PaddingRule(keep_memory=1.0, label=float("nan"))
#: The stream loader's padding, as the original's: empty label tensors, keep_memory 0.
STREAM_PADDING = PaddingRule(keep_memory=0.0, label=torch.empty(0))


def padding_item(shape, dtype: torch.dtype, rule: PaddingRule, metadata=None) -> tuple:
    """The item of a slot without data: zeros of ``shape`` ``[T, C, H, W]`` and ``dtype``,
    ``T`` labels ``rule.label``, ``rule.keep_memory``, an all-False ``frame_is_labeled`` and
    ``(metadata, 0, 0)`` (default metadata: a PADDING :class:`FileMetadata`)."""
    shape = tuple(int(s) for s in shape)
    num_tbins = shape[0]
    if metadata is None:
        metadata = FileMetadata(None, None, None, None, padding=True)
    return (torch.zeros(shape, dtype=dtype), [rule.label] * num_tbins, rule.keep_memory,
            np.zeros(num_tbins, dtype=bool), (metadata, 0, 0))


#: Start-of-sequence marker: value written in channel 0 of the top-left 10x10 pixels.
MARKER_VALUE = 222
#: File-name text: OpenCV Hershey plain font, scale 1.2, this RGB colour.
TEXT_COLOR = (50, 240, 12)


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
        vis_func, viz_labels = viz_labels, (rest[0] if rest else None)   # 4th: batch_size
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
        keep = as_numpy(batch["mask_keep_memory"]).reshape(-1)
        infos = batch["video_infos"]
        labels = batch.get("labels")
        for t in range(num_tbins):
            frame = np.zeros((size_y * height, size_x * width, 3), dtype=np.uint8)
            for i in range(n_items):
                meta = infos[i][0]
                img = np.ascontiguousarray(vis_func(as_numpy(inputs[t, i])), dtype=np.uint8)
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
        close_if_closable(frames)
    return count
