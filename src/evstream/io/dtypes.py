"""Numpy structured dtypes exchanged between evstream's layers.

Times are int64 microseconds everywhere. Coordinates are pixels, x to the right, y down,
origin at the top-left pixel. Polarity ``p`` is 1 for ON (brightness increase) and 0 for OFF.
"""

import numpy as np

#: Decoded change-detection events, 16 bytes, identical to metavision_core's EventCD.
EventCD = np.dtype({"names": ["x", "y", "p", "t"],
                    "formats": ["<u2", "<u2", "<i2", "<i8"],
                    "offsets": [0, 2, 4, 8], "itemsize": 16})


def event_words(events: np.ndarray) -> np.ndarray:
    """A contiguous EventCD array seen as ``int64[N, 2]`` (a view): ``x | y << 16 | p << 32``
    (``p`` the int16 at bits 32-47, bits 48-63 padding) in column 0, ``t`` in column 1."""
    return events.view(np.int64).reshape(-1, 2)

#: Largest sensor side (pixels) evstream reads: decoded x and y must fit EventCD's ``<u2`` fields.
MAX_SENSOR_SIDE = 65536
#: Largest sensor side (pixels) the RAW writers encode: 11-bit coordinates in EVT 2.0 / 2.1 / 3.0.
MAX_WRITABLE_SIDE = 2048

#: External trigger events: ``p`` edge (0 falling, 1 rising), ``t`` µs, ``id`` channel.
EventExtTrigger = np.dtype({"names": ["p", "t", "id"],
                            "formats": ["<i2", "<i8", "<i2"],
                            "offsets": [0, 8, 16], "itemsize": 24})

#: Bounding boxes, 40 bytes, identical to the automotive dataset toolbox's BBOX_DTYPE.
#: A box covers [x, x + w) x [y, y + h) at time ``t`` (µs, same clock as the events).
EventBbox = np.dtype({"names": ["t", "x", "y", "w", "h", "class_id", "track_id", "class_confidence"],
                      "formats": ["<i8", "<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "<f4"],
                      "offsets": [0, 8, 12, 16, 20, 24, 28, 32], "itemsize": 40})
