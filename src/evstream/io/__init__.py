"""Layer 1: event files. Bytes, headers, event dtypes, readers, writers and ``EventsIterator``.

This package never imports torch.
"""

from .dat import DatWriter, EventDatReader
from .dispatch import load_events, open_reader
from .dtypes import EventBbox, EventCD, EventExtTrigger
from .hdf5_events import HDF5EventsReader
from .header import RawHeader, read_raw_header
from .iterator import EventsIterator
from .npy import EventNpyReader
from .raw import RawReader
from .raw_writer import RawWriter
from .reader import EventReader

__all__ = ["DatWriter", "EventBbox", "EventCD", "EventDatReader", "EventExtTrigger",
           "EventNpyReader", "EventReader", "EventsIterator", "HDF5EventsReader", "RawHeader", "RawReader",
           "RawWriter", "load_events", "open_reader", "read_raw_header"]
