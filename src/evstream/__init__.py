"""evstream: event-camera recordings to recurrent-network batches.

Layers (imports only go down): ``io`` (bytes -> EventCD arrays), ``preprocessing``
(events -> tensors), ``data`` (recordings -> batches), ``detection_tracking`` (drawing),
``synth`` (simulated recordings), ``cli`` (commands).
"""

__version__ = "0.1.0"
