"""What both loaders share: :class:`LoaderBase`, the base of
:class:`~evstream.data.sequential_dataset.SequentialDataLoader` and
:class:`~evstream.data.stream.StreamDataLoader` (so of
:class:`~evstream.data.cd_processor_dataset.CDProcessorDataLoader`).

* **Device moves** (one rule, :func:`move_batch`): ``to(device)`` / ``cuda(device)`` / ``cpu()``
  take a ``torch.device`` or a string (``"cpu"``, ``"cuda:1"``); every tensor of a batch moves to
  the device except the values of :data:`~evstream.data.sequential_dataset_common.CPU_KEYS`
  (``labels``, ``frame_is_labeled``, ``video_infos``), which stay on the CPU: for the batch dict
  of both loaders, ``inputs`` and ``mask_keep_memory`` move.
* **Epochs**: :meth:`LoaderBase.set_epoch` checks the epoch, hands it to the dataset (which owns
  ``seed`` / ``epoch``, see :class:`~evstream.data.sharding.DatasetShardView`) and lets the loader
  drop a resume position of another epoch (:meth:`LoaderBase._on_epoch`).
* **State** (torchdata's ``Stateful`` protocol): every loader state starts with the same header
  (:meth:`LoaderBase._state_header`: ``kind``, ``version``, ``epoch``, ``seed``, ``rank``,
  ``world_size``, ``batch_size``, ``num_batches``), validated by one function,
  :func:`check_state`; each loader adds its own position.
* **Worker start**: :meth:`LoaderBase._warm_up_before_fork` (one item computed here before
  forked workers start, so that they inherit the loaded numba kernels).
* **Pictures**: :meth:`LoaderBase.show`, :meth:`LoaderBase.get_vis_func` and
  :meth:`LoaderBase.save_video`, drawn by
  :func:`~evstream.data.sequential_dataset_common.show_dataloader`, for any loader that says its
  preprocessing (:meth:`LoaderBase._preprocess_entry`) and frame size
  (:meth:`LoaderBase._frame_size`).
"""

from __future__ import annotations

import torch

from evstream.data._workers import starts_by_fork
from evstream.data.sequential_dataset_common import CPU_KEYS, show_dataloader, write_frames
from evstream.data.sharding import DatasetShardView, check_seed
from evstream.errors import ArgumentError

__all__ = ["LoaderBase", "as_device", "move_batch", "check_state", "STATE_VERSION"]

#: ``version`` of the loaders' state dicts
STATE_VERSION = 1


def as_device(device) -> torch.device:
    """``device`` (a ``torch.device``, a string such as ``"cuda:0"``, or a device index) as a
    ``torch.device``; ArgumentError for anything torch does not take."""
    if isinstance(device, torch.device):
        return device
    if isinstance(device, bool) or not isinstance(device, (str, int)):
        raise ArgumentError(f"a device must be a torch.device, a string or an index, got "
                            f"{device!r}")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ArgumentError(f"not a device: {device!r} ({exc})") from None


def move_batch(batch, device: torch.device):
    """``batch`` with its tensors on ``device`` (the loaders' one rule, module docstring):
    tensors in dicts, lists and plain tuples are moved; the values of ``labels``,
    ``frame_is_labeled`` and ``video_infos`` in a dict stay as they are. Nothing is copied for
    the CPU (the loaders' tensors are made there)."""
    if device.type == "cpu":
        return batch
    return _move(batch, device)


def _move(data, device):
    if isinstance(data, torch.Tensor):
        return data.to(device)
    if isinstance(data, dict):
        return {k: (v if k in CPU_KEYS else _move(v, device)) for k, v in data.items()}
    if isinstance(data, list):
        return [_move(v, device) for v in data]
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return tuple(_move(v, device) for v in data)
    return data


def check_state(state, kind: str, rank: int, world_size: int, batch_size: int | None = None,
                num_batches: int | None = None) -> None:
    """Raises ArgumentError unless ``state`` is a loader state of ``kind`` for this ``rank`` of
    ``world_size`` (an exact resume needs the same split) and, when given, this ``batch_size`` and
    ``num_batches`` (same files and options)."""
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ArgumentError(f"not a {kind} state: {state!r:.200}")
    missing = [k for k in ("rank", "world_size", "batch_size", "num_batches") if k not in state]
    if missing:
        raise ArgumentError(f"a {kind} state without {', '.join(missing)}: {state!r:.200}")
    if (state["rank"], state["world_size"]) != (rank, world_size):
        raise ArgumentError(f"the state is for rank {state['rank']} of {state['world_size']}, "
                            f"this loader is rank {rank} of {world_size}: an exact resume needs "
                            f"the same world size")
    mine = {"batch_size": batch_size, "num_batches": num_batches}
    differ = [k for k, v in mine.items() if v is not None and state[k] != v]
    if differ:
        raise ArgumentError(f"the state is for {state['num_batches']} batches of "
                            f"{state['batch_size']}, this loader has {num_batches} of "
                            f"{batch_size}: build it with the same files and options")


class LoaderBase(DatasetShardView):
    """The part of a loader that does not depend on how it schedules its items (module
    docstring). A subclass sets ``dataset`` (with ``seed``, ``epoch``, ``rank``, ``world_size``
    and ``set_epoch``) and ``device`` (``torch.device("cpu")`` to start with), and defines
    :meth:`_on_epoch`, :meth:`_preprocess_entry`, :meth:`_frame_size` and :meth:`_bin_us` where
    it needs them."""

    dataset = None
    device: torch.device = torch.device("cpu")
    #: ``kind`` of this loader's states
    state_kind = "loader"
    #: whether :meth:`_warm_up_before_fork` ran
    _warmed = False

    # ------------------------------------------------------------------ device
    def to(self, device):
        """Batches are moved to ``device`` (a ``torch.device`` or a string such as
        ``"cuda:0"``): ``inputs`` and ``mask_keep_memory``; labels, ``frame_is_labeled`` and
        ``video_infos`` stay on the CPU. Returns the loader."""
        self.device = as_device(device)
        return self

    def cuda(self, device="cuda"):
        """``to(device)`` for a CUDA device (ArgumentError when CUDA is not available)."""
        if not torch.cuda.is_available():
            raise ArgumentError("CUDA is not available")
        return self.to(device)

    def cpu(self):
        """Batches stay on the CPU (the default)."""
        return self.to(torch.device("cpu"))

    def _to_device(self, batch):
        return move_batch(batch, self.device)

    # ------------------------------------------------------------------ workers
    def _warm_up_before_fork(self, multiprocessing_context=None) -> None:
        """Before the first iteration that forks workers (once per loader): the dataset's
        ``warm_up()`` computes one item in this process, so that every worker of every epoch
        inherits the numba kernels it loaded (workers are started again each epoch; a fresh
        process loads each kernel from numba's cache at its first call). Spawned workers
        cannot inherit them: nothing is done for them."""
        if self.num_workers and not self._warmed and \
                starts_by_fork(multiprocessing_context):
            self.dataset.warm_up()
            self._warmed = True

    # ------------------------------------------------------------------ epoch
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (as torch's ``DistributedSampler.set_epoch``): it seeds the shuffles
        and the transforms. A resume position loaded for another epoch is dropped."""
        epoch = check_seed("epoch", epoch)
        changed = epoch != self.dataset.epoch
        if changed:
            self.dataset.set_epoch(epoch)
        self._on_epoch(changed)

    def _on_epoch(self, changed: bool) -> None:
        """Called by :meth:`set_epoch` after the dataset got the epoch (``changed``: it is not the
        one it had)."""

    # ------------------------------------------------------------------ state
    def _state_header(self, num_batches) -> dict:
        """The keys every loader state starts with."""
        return {"kind": type(self).state_kind, "version": STATE_VERSION,
                "epoch": self.dataset.epoch, "seed": self.dataset.seed, "rank": self.rank,
                "world_size": self.world_size, "batch_size": self.batch_size,
                "num_batches": num_batches}

    # ------------------------------------------------------------------ pictures
    def _preprocess_entry(self) -> dict:
        """The registry entry of the loader's preprocessing (its ``"viz"`` draws a tensor)."""
        raise ArgumentError(f"{type(self).__name__} has no preprocessing to draw its batches "
                            f"with: pass a vis_func to show_dataloader")

    def _frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of one item's frame."""
        raise ArgumentError(f"{type(self).__name__} does not know its frame size: use "
                            f"show_dataloader")

    def _bin_us(self) -> int | None:
        """Duration of one time bin in µs (None when bins are not of a fixed duration)."""
        return None

    def get_vis_func(self):
        """The registry's visualisation of the preprocessing: ``[C, H, W]`` -> RGB uint8."""
        return self._preprocess_entry()["viz"]

    def show(self, viz_labels=None):
        """Yields one RGB uint8 grid per time bin of every batch (a new array each time).

        The grid has ``ceil(sqrt(N))`` columns; each cell is an item drawn with
        :meth:`get_vis_func`, its labels drawn by ``viz_labels(frame, labels)`` when given,
        the file name at the bottom, and a red 10x10 square at the top-left on the first two
        bins of a new sequence. Padding items are drawn empty and named ``PADDING``.
        """
        height, width = self._frame_size()
        return show_dataloader(self, height, width, self.get_vis_func(), viz_labels)

    def save_video(self, path=None, viz_labels=None, fps=None, png_dir=None, max_frames=None,
                   fourcc="mp4v") -> int:
        """Writes the :meth:`show` stream to an mp4 file and/or PNG frames (for machines without
        a display); returns the number of frames written.

        Args:
            path: output video (``.mp4``; None to write only PNGs).
            viz_labels: as in :meth:`show`.
            fps: frames per second (default: real time, ``1e6 / delta_t``; 20 when the bins have
                no fixed duration, as in ``n_events`` mode).
            png_dir: also write ``frame_000000.png``, ... there.
            max_frames: stop after this many frames.
            fourcc: OpenCV codec code for the video.
        """
        if fps is None:
            bin_us = self._bin_us()
            fps = 1e6 / bin_us if bin_us else 20.0
        return write_frames(self.show(viz_labels), path, fps=fps, png_dir=png_dir,
                            max_frames=max_frames, fourcc=fourcc)
