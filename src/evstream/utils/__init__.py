"""Small helpers shared by the layers: the HDF5 tensor-file writer (:mod:`~evstream.utils.h5_writer`),
the process pool (:mod:`~evstream.utils.parallel`), array helpers (:mod:`~evstream.utils.arrays`),
all torch-free; and shared-memory tensors (:mod:`~evstream.utils.shm`, torch: imported by layer 3
only, never by this package)."""

from evstream.utils.h5_writer import COMPRESSIONS, HDF5Writer, compression_options

__all__ = ["COMPRESSIONS", "HDF5Writer", "compression_options"]
