"""RVT's loaders on evstream's stream loader (no torchdata DataPipes).

Both of RVT's sampling modes are a :class:`~evstream.data.stream.StreamDataset` played by a
:class:`~evstream.data.stream.StreamDataLoader`, so they get that loader's sharding over ranks,
``(seed, epoch)`` determinism independent of the worker count, ``state_dict`` resume and
shared-memory ring transfer:

* ``sampling="random"``: every stream is one random-access sample (one per label frame with
  enough history, :func:`~evstream.rvt.samples.random_sample_windows`); with ``shuffle`` (the
  default for training) they are permuted by ``(seed, epoch)``, and a batch is B consecutive
  samples of that order;
* ``sampling="stream"``: every stream is one streaming range of a sequence
  (:func:`~evstream.rvt.samples.stream_ranges`, guaranteed-label ranges for training, one range
  per sequence for evaluation), played sample after sample in one batch slot; a finished slot
  gets the fully padded sample (L zero frames, no labels, ``is_first_sample`` False,
  ``is_padded_mask`` all True).

:class:`RvtMixedLoader` is RVT's training mix: each step one stream batch and one random
batch merged, stream rows first.

Sequences are :class:`~evstream.rvt.layout_reader.LayoutSequence` (RVT's preprocessed h5) or
:class:`~evstream.rvt.sequence.RecordingSequence` (frames computed from the recording in the
worker): the same batches either way.

Departures from RVT (documented options, never silent): RVT's training stream gives each of
its ``B x W`` slots an independent random permutation of all chunks (so an "epoch" repeats
chunks); here each chunk plays once per epoch, in one slot. RVT's evaluation stream deals the
chunks to workers and slots longest first by a "pyramid" order; here the chunks are dealt in
list order (``i``-th chunk to slot ``i % B``). RVT's random loader drops the last partial batch;
here it is filled with padded samples so that no sample is lost. Augmentation is seeded from
``(seed, epoch)`` instead of torch's global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from evstream.data.sharding import epoch_seed
from evstream.data.stream import StreamDataLoader, StreamDataset, stream_output
from evstream.errors import ArgumentError
from evstream.rvt import augmentation
from evstream.rvt.batch import DataType, collate_metavision, collate_rvt, merge_rvt_batches
from evstream.rvt.config import RvtDataset, dataset_preset
from evstream.rvt.samples import (SampleWindows, cut_range, random_sample_windows,
                                  stream_ranges, training_labels)

SAMPLINGS = ("random", "stream")
BATCH_FORMATS = ("rvt", "metavision")


@dataclass(frozen=True)
class StreamChunk:
    """One streaming range: windows ``[start, stop)`` of sequence ``sequence``, number
    ``chunk`` (its augmentation is drawn once from it)."""

    sequence: int
    start: int
    stop: int
    chunk: int


def make_item(sequence, spec: SampleWindows, dataset: RvtDataset) -> dict:
    """The item of one sample (see :mod:`evstream.rvt.batch`): frames read into a stream
    ring buffer, labels of every labelled step, padding after the sample's windows."""
    shape = (spec.length,) + tuple(sequence.frame_shape)
    frames = stream_output(shape, torch.uint8)
    buffer = frames.numpy()
    n = spec.stop - spec.start
    sequence.frames(spec.start, spec.stop, out=buffer[:n])
    buffer[n:] = 0
    frame_of_window = {int(k): i for i, k in enumerate(sequence.repr_index)
                       if spec.start <= k < spec.stop}
    labels = [None] * spec.length
    for k, i in frame_of_window.items():
        labels[k - spec.start] = training_labels(sequence.labels_of_frame(i), dataset)
    mask = np.zeros(spec.length, dtype=bool)
    mask[n:] = True
    return {"frames": frames, "labels": labels, "is_first_sample": spec.first,
            "is_padded_mask": mask, "input_size_hw": tuple(sequence.frame_shape[1:]),
            "info": (sequence.name, spec.start, spec.stop)}


def padded_item(length: int, frame_shape: tuple[int, int, int]) -> dict:
    """RVT's fully padded filler sample."""
    return {"frames": torch.zeros((length,) + tuple(frame_shape), dtype=torch.uint8),
            "labels": [None] * length, "is_first_sample": False,
            "is_padded_mask": np.ones(length, dtype=bool),
            "input_size_hw": tuple(frame_shape[1:]), "info": ("", 0, 0)}


def _augmented(item: dict, params: augmentation.AugmentParams, rng) -> dict:
    frames, labels = augmentation.apply(params, item["frames"], item["labels"], rng)
    if frames is not item["frames"]:
        item["frames"].copy_(frames)
    item["labels"] = labels
    return item


class _SampleStreamer:
    """``streamer(stream)`` of the random mode: one sample."""

    def __init__(self, sequences, dataset, augment):
        self.sequences, self.dataset, self.augment = sequences, dataset, augment
        self.seed = self.epoch = 0

    def set_epoch(self, seed: int, epoch: int) -> None:
        """The augmentation's seeds (the StreamDataset protocol)."""
        self.seed, self.epoch = seed, epoch

    def __call__(self, indexed):
        index, spec = indexed
        item = make_item(self.sequences[spec.sequence], spec, self.dataset)
        if self.augment:
            rng = np.random.default_rng([epoch_seed(self.seed, self.epoch), 1, index])
            item = _augmented(item, augmentation.draw_random(rng, item["input_size_hw"]), rng)
        return [item]


class _ChunkIterator:
    """The samples of one streaming chunk; ``skip(n)`` jumps without reading."""

    def __init__(self, streamer, chunk: StreamChunk):
        self.streamer, self.chunk = streamer, chunk
        self.specs = cut_range(chunk.start, chunk.stop, streamer.length, chunk.sequence,
                               chunk.chunk)
        self.pos = 0
        self.params = None
        if streamer.augment:
            self.rng = np.random.default_rng([epoch_seed(streamer.seed, streamer.epoch), 2,
                                              chunk.chunk])
            hw = streamer.sequences[chunk.sequence].frame_shape[1:]
            self.params = augmentation.draw_stream(self.rng, hw)

    def __iter__(self):
        return self

    def skip(self, n: int) -> None:
        self.pos += n

    def __next__(self):
        if self.pos >= len(self.specs):
            raise StopIteration
        spec = self.specs[self.pos]
        self.pos += 1
        s = self.streamer
        item = make_item(s.sequences[spec.sequence], spec, s.dataset)
        if self.params is not None:
            item = _augmented(item, self.params, self.rng)
        return item


class _ChunkStreamer(_SampleStreamer):
    """``streamer(stream)`` of the stream mode: the samples of one chunk."""

    def __init__(self, sequences, dataset, length, augment):
        super().__init__(sequences, dataset, augment)
        self.length = length

    def __call__(self, chunk):
        return _ChunkIterator(self, chunk)


class RvtLoader:
    """RVT's batches over sequences of one split (module docstring).

    Args:
        sequences: :class:`~evstream.rvt.layout_reader.LayoutSequence` or
            :class:`~evstream.rvt.sequence.RecordingSequence` objects (same dataset).
        dataset: ``"gen1"`` / ``"gen4"``.
        sampling: ``"random"`` or ``"stream"``.
        batch_size: B; num_workers: worker processes (0: this process).
        sequence_length: L (default: the dataset's, 21 gen1 / 5 gen4).
        train: training split behaviour: random augmentation, shuffled samples/chunks,
            guaranteed-label streaming ranges (else evaluation: one range per sequence, no
            augmentation, list order).
        augment, shuffle: override ``train``'s choice.
        seed, epoch, rank, world_size: as :class:`~evstream.data.stream.StreamDataset`.
        batch_format: ``"rvt"`` (RVT's dict) or ``"metavision"`` (evstream's batch).
        data_type: the enum keying RVT's dict (default :class:`~evstream.rvt.batch.DataType`;
            pass an RVT fork's own ``DataType`` to keep its keys).
        ring_depth, multiprocessing_context, persistent_workers: as
            :class:`~evstream.data.stream.StreamDataLoader`.

    With forked workers (the default start method on Linux), the first iteration computes one
    sample in this process first (``warm_up`` of the stream loader), so that the workers of
    every epoch start with the kernels loaded.
    """

    def __init__(self, sequences, dataset="gen1", sampling="random", batch_size=8, num_workers=0,
                 *, sequence_length=None, train=False, augment=None, shuffle=None, seed=0,
                 epoch=0, rank=None, world_size=None, batch_format="rvt", data_type=DataType,
                 ring_depth=3, multiprocessing_context=None, persistent_workers=False):
        if sampling not in SAMPLINGS:
            raise ArgumentError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if batch_format not in BATCH_FORMATS:
            raise ArgumentError(f"batch_format must be one of {BATCH_FORMATS}, got {batch_format!r}")
        self.sequences = list(sequences)
        if not self.sequences:
            raise ArgumentError("RvtLoader needs at least one sequence")
        self.dataset = dataset_preset(dataset)
        self.length = int(sequence_length or self.dataset.sequence_length)
        self.sampling = sampling
        augment = train if augment is None else augment
        shuffle = train if shuffle is None else shuffle
        frame_shape = tuple(self.sequences[0].frame_shape)
        odd = [s.name for s in self.sequences if tuple(s.frame_shape) != frame_shape]
        if odd:
            raise ArgumentError(f"sequences {odd[:3]} have frames of another shape than "
                                f"{frame_shape} (mixed datasets or representations?)")
        if sampling == "random":
            specs = [s for i, seq in enumerate(self.sequences)
                     for s in random_sample_windows(seq.repr_index, self.length, i)]
            streams = list(enumerate(specs))
            lengths = [1] * len(streams)
            streamer = _SampleStreamer(self.sequences, self.dataset, augment)
        else:
            streams, lengths = [], []
            for i, seq in enumerate(self.sequences):
                for s, e in stream_ranges(seq.repr_index, seq.num_windows, self.length, train):
                    streams.append(StreamChunk(i, s, e, len(streams)))
                    lengths.append(math.ceil((e - s) / self.length))
            streamer = _ChunkStreamer(self.sequences, self.dataset, self.length, augment)
        if not streams:
            raise ArgumentError(f"no {sampling} sample of length {self.length} in these sequences")
        self.samples = len(streams) if sampling == "random" else sum(lengths)
        dataset_ = StreamDataset(streams, streamer, batch_size, "zeros",
                                 padded_item(self.length, frame_shape), seed, shuffle=shuffle,
                                 epoch=epoch, rank=rank, world_size=world_size, lengths=lengths)
        if batch_format == "rvt":         # uint8 frames: the workers write the batches in place
            collate = _RvtCollate(data_type)
            in_place = ((self.length,) + frame_shape, torch.uint8)
        else:                             # float32 batches: a converting copy
            collate, in_place = collate_metavision, None
        self.loader = StreamDataLoader(dataset_, num_workers, collate, ring_depth=ring_depth,
                                       multiprocessing_context=multiprocessing_context,
                                       warm_up=True, batch_output=in_place,
                                       persistent_workers=persistent_workers)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def state_dict(self) -> dict:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)

    def close(self) -> None:
        """Stop the workers kept by ``persistent_workers``."""
        self.loader.close()

    @property
    def stats(self) -> dict:
        return self.loader.stats


class _RvtCollate:
    def __init__(self, data_type):
        self.data_type = data_type

    def __call__(self, items):
        return collate_rvt(items, self.data_type)


def mixed_split(batch_size: int, num_workers: int, w_stream: float = 1.0,
                w_random: float = 1.0) -> tuple[int, int, int, int]:
    """RVT's mixed-mode shares ``(B_stream, B_random, W_stream, W_random)``:
    ``B_rnd = min(round(B w_r / (w_s + w_r)), B - 1)``, ``W_rnd = min(ceil(W B_rnd / B), W - 1)``.
    """
    if batch_size < 2:
        raise ArgumentError(f"mixed sampling needs batch_size >= 2, got {batch_size}")
    b_rnd = min(round(batch_size * w_random / (w_stream + w_random)), batch_size - 1)
    if num_workers >= 2:
        w_rnd = min(math.ceil(num_workers * b_rnd / batch_size), num_workers - 1)
        w_str = num_workers - w_rnd
    else:
        w_rnd = w_str = num_workers
    return batch_size - b_rnd, b_rnd, w_str, w_rnd


class RvtMixedLoader:
    """RVT's training mix: per step one stream batch (``B_str`` rows, first) and one random
    batch (``B_rnd`` rows) merged (:func:`~evstream.rvt.batch.merge_rvt_batches`); the epoch ends
    with the shorter of the two. Other arguments as :class:`RvtLoader` (``train=True``)."""

    def __init__(self, sequences, dataset="gen1", batch_size=8, num_workers=0, **options):
        b_str, b_rnd, w_str, w_rnd = mixed_split(batch_size, num_workers)
        options.setdefault("train", True)
        if options.get("batch_format", "rvt") != "rvt":
            raise ArgumentError("RvtMixedLoader yields RVT's batch dict only")
        self.stream = RvtLoader(sequences, dataset, "stream", b_str, w_str, **options)
        self.random = RvtLoader(sequences, dataset, "random", b_rnd, w_rnd, **options)

    def __len__(self) -> int:
        return min(len(self.stream), len(self.random))

    def __iter__(self):
        for a, b in zip(self.stream, self.random):
            yield merge_rvt_batches(a, b)

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)
        self.random.set_epoch(epoch)

    def state_dict(self) -> dict:
        return {"stream": self.stream.state_dict(), "random": self.random.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state["stream"])
        self.random.load_state_dict(state["random"])

    def close(self) -> None:
        """Stop the workers kept by ``persistent_workers``."""
        self.stream.close()
        self.random.close()
