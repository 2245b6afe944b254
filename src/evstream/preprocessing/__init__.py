"""Layer 2: event arrays -> ``[T, C, H, W]`` tensors.

The registry (same names, channel counts, default kwargs and maths as Prophesee's
``metavision_ml.preprocessing``, plus ``stacked_histogram`` and ``voxel_grid``), ``CDProcessor``,
the event-to-tensor functions (numba, bounds-safe) and the visualisations. A torch implementation
of histo, diff, event_cube, stacked_histogram and voxel_grid for building tensors on a GPU is in
:mod:`evstream.preprocessing.torch_kernels` (imported on demand; this package does not import torch).
"""

from evstream.preprocessing.kernels import (diff, diff_quantized, event_cube, histo, histo_quantized,
                                            multi_channel_timesurface, stacked_histogram, timesurface,
                                            voxel_grid)
from evstream.preprocessing.processor import CDProcessor
from evstream.preprocessing.registry import (PREPROCESSING_DICT, PreprocessingNameError, get_output_dtype,
                                             get_preprocess_dict, get_preprocess_function_names,
                                             get_preprocess_kwargs_keys, register_new_preprocessing)
from evstream.preprocessing.validation import OUT_OF_RANGE_POLICIES

__all__ = [
    "CDProcessor", "PREPROCESSING_DICT", "PreprocessingNameError", "OUT_OF_RANGE_POLICIES",
    "register_new_preprocessing", "get_preprocess_dict", "get_preprocess_function_names",
    "get_preprocess_kwargs_keys", "get_output_dtype",
    "histo", "diff", "histo_quantized", "diff_quantized", "event_cube", "timesurface",
    "multi_channel_timesurface", "stacked_histogram", "voxel_grid",
]
