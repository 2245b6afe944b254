"""evstream: event-camera recordings to recurrent-network batches.

Layers (imports only go down): ``io`` (bytes -> EventCD arrays), ``preprocessing``
(events -> tensors), ``data`` (recordings -> batches), ``detection_tracking`` (drawing),
``synth`` (simulated recordings), ``cli`` (commands).
"""

from ._numba_cache import ensure_cache_location

__version__ = "0.1.0"

ensure_cache_location()   # before any kernel is defined: a read-only install must import
