"""Layer 3: streams of tensors for training (file metadata, scheduling, datasets, loaders).

For now: :class:`HDF5Iterator` over precomputed tensor files.
"""

from evstream.data.hdf5_iterator import HDF5Iterator
from evstream.data.sequential_dataset import SequentialDataLoader, SequentialDataset
from evstream.data.cd_processor_iterator import CDProcessorIterator
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.stream import StreamDataLoader, StreamDataset

__all__ = ["HDF5Iterator", "SequentialDataLoader", "SequentialDataset", "CDProcessorIterator",
           "CDProcessorDataLoader", "StreamDataLoader", "StreamDataset"]
