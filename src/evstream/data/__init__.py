"""Layer 3: streams of tensors for training (file metadata, scheduling, datasets, loaders).

One recording as tensors: :class:`HDF5Iterator` (a precomputed tensor file) and
:class:`CDProcessorIterator` (an event recording, tensors built on the fly). Recordings played
side by side as ``[T, N, C, H, W]`` batches: :class:`SequentialDataLoader` (map-style, a schedule
of chunks) and :class:`CDProcessorDataLoader` (streaming, each recording read once, front to
back), the latter on the generic :class:`StreamDataLoader`. Both yield the batch dict of
:mod:`evstream.data.sequential_dataset_common`; docs/architecture.md shows how the pieces fit.
"""

from evstream.data.hdf5_iterator import HDF5Iterator
from evstream.data.sequential_dataset import SequentialDataLoader, SequentialDataset
from evstream.data.cd_processor_iterator import CDProcessorIterator
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.stream import StreamDataLoader, StreamDataset

__all__ = ["HDF5Iterator", "SequentialDataLoader", "SequentialDataset", "CDProcessorIterator",
           "CDProcessorDataLoader", "StreamDataLoader", "StreamDataset"]
