"""Layer 4: drawing boxes (and tracks) on frames. Knows nothing about loaders."""

from evstream.detection_tracking.display_frame import draw_box_events

__all__ = ["draw_box_events"]
