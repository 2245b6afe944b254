"""The event-to-tensor functions under the module name metavision_ml uses
(``metavision_ml.preprocessing.event_to_tensor``), so ported imports keep working."""

from evstream.preprocessing.kernels import (diff, diff_quantized, event_cube, histo,  # noqa: F401
                                            histo_quantized, multi_channel_timesurface,
                                            stacked_histogram, timesurface, voxel_grid)
