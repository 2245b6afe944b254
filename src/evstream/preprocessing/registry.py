"""The preprocessing registry: name -> event-to-tensor function, channel count, default kwargs, viz.

``PREPROCESSING_DICT[name] = {"cin": int, "events_to_tensor": fn, "kwargs": dict, "viz": fn}``,
the only process-wide state of evstream. The eight names of the original come first, in its
order and with its channel counts and default kwargs, then evstream's additions
(``stacked_histogram``, ``voxel_grid``).

Lookups of an unknown name and registering a taken name raise :class:`PreprocessingNameError`,
which is an :class:`~evstream.errors.EvstreamError`, a ``ValueError`` and (for code written
against the original, which asserted) an ``AssertionError``; its message lists the known names.
"""

from __future__ import annotations

import copy

import numpy as np

from evstream.errors import PreprocessingNameError
from evstream.preprocessing import kernels, viz

PREPROCESSING_DICT: dict[str, dict] = {}


def register_new_preprocessing(name, n_input_channels, function, viz_function,
                               kwargs={"preprocess_dtype": np.float32, "max_incr_per_pixel": 5}):
    """Adds a preprocessing to the registry of this process.

    Args:
        name: new, unique name.
        n_input_channels: channel count C of the tensors it makes.
        function: ``fn(events, output_array, total_tbins_delta_t, downsampling_factor=0, reset=True,
            **kwargs)`` filling a ``[T, C, H, W]`` array.
        viz_function: ``viz(im[C, H, W]) -> uint8 H x W x 3`` RGB image.
        kwargs: default keyword arguments (``preprocess_dtype`` = output dtype, popped by callers
            before calling ``function``). Copied.
    """
    if not isinstance(name, str) or not name:
        raise PreprocessingNameError(f"preprocessing name must be a non-empty string, got {name!r}")
    if name in PREPROCESSING_DICT:
        raise PreprocessingNameError(f"preprocessing {name!r} is already registered "
                                     f"(known: {', '.join(PREPROCESSING_DICT)})")
    if not callable(function) or not callable(viz_function):
        raise PreprocessingNameError(f"preprocessing {name!r}: function and viz_function must be callable")
    if int(n_input_channels) < 1:
        raise PreprocessingNameError(f"preprocessing {name!r}: n_input_channels must be >= 1")
    PREPROCESSING_DICT[name] = {"cin": int(n_input_channels), "events_to_tensor": function,
                                "kwargs": copy.deepcopy(dict(kwargs)), "viz": viz_function}


def _entry(name) -> dict:
    try:
        return PREPROCESSING_DICT[name]
    except (KeyError, TypeError):
        raise PreprocessingNameError(f"unknown preprocessing {name!r}; known: "
                                     f"{', '.join(PREPROCESSING_DICT)}") from None


def get_preprocess_dict(name) -> dict:
    """A deep copy of the registry entry ``{"cin", "events_to_tensor", "kwargs", "viz"}``."""
    return copy.deepcopy(_entry(name))


def get_preprocess_function_names() -> list[str]:
    """Registered names, in registration order."""
    return list(PREPROCESSING_DICT)


def get_preprocess_kwargs_keys(name) -> list[str]:
    """Names of the default kwargs of ``name`` (including ``preprocess_dtype``)."""
    return list(_entry(name)["kwargs"])


def get_output_dtype(name, downsampling_factor=0, preprocess_kwargs=None) -> np.dtype:
    """The tensor dtype that :class:`~evstream.preprocessing.CDProcessor` uses for ``name``:
    ``preprocess_kwargs["preprocess_dtype"]`` (else the registry default, else uint8), forced to
    float32 when ``downsampling_factor > 0`` and the name contains ``"quantized"`` (pooled counts
    are fractions). Layers above should use it rather than the raw kwarg: the original's
    SequentialDataset keeps the integer dtype there and fails (docs/compatibility.md)."""
    kwargs = dict(_entry(name)["kwargs"])
    kwargs.update(preprocess_kwargs or {})
    if downsampling_factor and "quantized" in name:
        return np.dtype(np.float32)
    return np.dtype(kwargs.get("preprocess_dtype", np.uint8))


def _register_builtins() -> None:
    f32 = np.float32
    builtins = [
        ("diff", 1, kernels.diff, viz.viz_diff_binarized, {"preprocess_dtype": f32, "max_incr_per_pixel": 5}),
        ("diff_quantized", 1, kernels.diff_quantized, viz.viz_diff_binarized,
         {"preprocess_dtype": np.int8, "negative_bit_length": 8, "normalization": False}),
        ("histo", 2, kernels.histo, viz.viz_histo_binarized, {"preprocess_dtype": f32, "max_incr_per_pixel": 5}),
        ("histo_quantized", 2, kernels.histo_quantized, viz.viz_histo_binarized,
         {"preprocess_dtype": np.uint8, "negative_bit_length": 4, "total_bit_length": 8, "normalization": False}),
        ("timesurface", 2, kernels.timesurface, viz.viz_timesurface, {"preprocess_dtype": f32}),
        ("event_cube", 6, kernels.event_cube, viz.viz_event_cube_rgb,
         {"preprocess_dtype": f32, "split_polarity": True, "max_incr_per_pixel": 5}),
        ("event_cube_paper", 10, kernels.event_cube, viz.viz_event_cube_rgb,
         {"preprocess_dtype": f32, "split_polarity": True, "max_incr_per_pixel": 255 / 4}),
        ("multi_channel_timesurface", 6, kernels.multi_channel_timesurface, viz.viz_multichannel_timesurface,
         {"preprocess_dtype": f32}),
        ("stacked_histogram", 20, kernels.stacked_histogram, viz.viz_stacked_histogram,
         {"preprocess_dtype": np.uint8, "count_cutoff": 10}),
        ("voxel_grid", 5, kernels.voxel_grid, viz.viz_voxel_grid, {"preprocess_dtype": f32}),
    ]
    for name, cin, fn, vis, kw in builtins:
        register_new_preprocessing(name, cin, fn, vis, kw)


_register_builtins()
