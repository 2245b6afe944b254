"""Small helpers shared by the layers (no torch): the HDF5 tensor-file writer."""

from evstream.utils.h5_writer import COMPRESSIONS, HDF5Writer, compression_options

__all__ = ["COMPRESSIONS", "HDF5Writer", "compression_options"]
