"""Checks done once per call at the Python boundary of every event-to-tensor function.

The numba kernels of :mod:`evstream.preprocessing.kernels` trust what they are given; this module
makes that trust safe. It turns an event array into four plain field arrays, checks the output
array's rank, dtype kind and channel count, the window length and the downsampling factor, builds
the exact integer edges of the time bins, and applies the out-of-range policy:

``on_out_of_range``
    What to do with events outside the window ``0 <= t < total_tbins_delta_t`` or outside the
    sensor (``x >= W << k``, ``y >= H << k``, with ``k`` the downsampling factor):

    * ``"drop"`` (default): skip them; the function returns how many it skipped.
    * ``"warn"``: skip them and emit one :class:`RuntimeWarning` per call with the count.
    * ``"raise"``: raise :class:`~evstream.errors.EventArrayError` before the output is touched,
      naming the first offending event.

    The kernels check every event against the bounds whatever the policy, so no policy can write
    outside the output array.

Time bins use the original's rule: ``dt = total / T`` (a float) and an event at integer time
``t`` goes to bin ``min(t // dt, T - 1)`` (Python floor division). :func:`time_edges` turns this
rule into integer edges once per call, so the kernels only compare integers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from evstream.errors import EventArrayError, KernelArgumentError

#: The accepted values of the ``on_out_of_range`` keyword, the first is the default.
OUT_OF_RANGE_POLICIES = ("drop", "warn", "raise")

_FIELD_DTYPES = {"x": np.dtype("<u2"), "y": np.dtype("<u2"), "p": np.dtype("<i2"), "t": np.dtype("<i8")}
_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


def event_fields(events, fn_name: str):
    """Returns ``(x, y, p, t)`` as 1-D arrays with the EventCD field dtypes (views when possible).

    Accepts any 1-D structured array with integer fields ``x, y, p, t`` (EventCD or not). Fields
    of another integer dtype are converted (a copy); float or missing fields raise.
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise EventArrayError(f"{fn_name}: events must be a numpy structured array with fields x, y, p, t, "
                              f"got {type(events).__name__}"
                              + ("" if not isinstance(events, np.ndarray) else f" of dtype {events.dtype}"))
    if events.ndim != 1:
        raise EventArrayError(f"{fn_name}: events must be 1-D, got shape {events.shape}")
    missing = [f for f in _FIELD_DTYPES if f not in events.dtype.names]
    if missing:
        raise EventArrayError(f"{fn_name}: events lack the field(s) {missing}; they have {list(events.dtype.names)}")
    out = []
    for name, want in _FIELD_DTYPES.items():
        col = events[name]
        if col.ndim != 1:
            raise EventArrayError(f"{fn_name}: field {name!r} must hold one value per event, got "
                                  f"{events.dtype[name]} (shape {col.shape})")
        if col.dtype != want:
            if col.dtype.kind not in "iub":
                raise EventArrayError(f"{fn_name}: field {name!r} must be an integer, got {col.dtype}")
            if name in "xy" and col.size and (col.min() < 0 or col.max() > 65535):
                raise EventArrayError(f"{fn_name}: field {name!r} has values outside [0, 65535]")
            col = col.astype(want)
        out.append(col)
    return tuple(out)


def check_policy(on_out_of_range: str, fn_name: str) -> None:
    if on_out_of_range not in OUT_OF_RANGE_POLICIES:
        raise KernelArgumentError(f"{fn_name}: on_out_of_range must be one of {OUT_OF_RANGE_POLICIES}, "
                              f"got {on_out_of_range!r}")


def check_downsampling(downsampling_factor, fn_name: str) -> int:
    k = downsampling_factor
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) <= 14:
        raise KernelArgumentError(f"{fn_name}: downsampling_factor must be an integer in [0, 14] (a power-of-two "
                              f"exponent), got {downsampling_factor!r}")
    return int(k)


#: Accepted window lengths in µs: ``[MIN_TOTAL_US, MAX_TOTAL_US]``. At least 1 µs (a shorter
#: window holds only ``t = 0`` and makes ``bins / total`` overflow); at most 2**62 µs (146,000
#: years), so that the window's integer limit and the bin edges stay int64.
MIN_TOTAL_US, MAX_TOTAL_US = 1, 2 ** 62


def check_total(total_tbins_delta_t, fn_name: str) -> float:
    """Window length in µs: a real number in ``[MIN_TOTAL_US, MAX_TOTAL_US]``."""
    if isinstance(total_tbins_delta_t, (bool, np.bool_)):
        raise KernelArgumentError(f"{fn_name}: total_tbins_delta_t must be a number, got {total_tbins_delta_t!r}")
    try:
        total = float(total_tbins_delta_t)
    except (TypeError, ValueError, OverflowError):
        raise KernelArgumentError(f"{fn_name}: total_tbins_delta_t must be a number, "
                              f"got {total_tbins_delta_t!r:.80}") from None
    if not (math.isfinite(total) and MIN_TOTAL_US <= total <= MAX_TOTAL_US):
        raise KernelArgumentError(f"{fn_name}: total_tbins_delta_t must be a finite number of µs in "
                              f"[{MIN_TOTAL_US}, 2**62], got {total_tbins_delta_t!r:.80}")
    return total


def check_number(value, name: str, fn_name: str, *, lo: float, integer: bool = False,
                 hi: float = math.inf, allow_none: bool = False, lo_open: bool = False):
    """A keyword argument of a kernel: a finite real (or integer) in ``[lo, hi]`` (``(lo, hi]``
    with ``lo_open``), or None when ``allow_none``. Returns it as float / int."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        number = float(value)
        ok = math.isfinite(number) and (lo < number if lo_open else lo <= number) and number <= hi
        if integer:
            ok = ok and number == int(number)
    if not ok:
        what = "an integer" if integer else "a finite number"
        bound = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise KernelArgumentError(f"{fn_name}: {name} must be {what} in {bound}"
                              + (" or None" if allow_none else "") + f", got {value!r:.80}")
    return int(value) if integer else float(value)


def check_output(output, fn_name: str, *, kinds: str, channels: int | None = None,
                 even_channels: bool = False, why: str = "") -> np.ndarray:
    """Checks a ``[T, C, H, W]`` numpy output: rank, non-empty, writable, dtype kind in ``kinds``.

    ``kinds`` uses numpy kind letters: ``f`` float (32 or 64 bits), ``i`` signed, ``u`` unsigned.
    """
    if not isinstance(output, np.ndarray):
        raise KernelArgumentError(f"{fn_name}: output_array must be a numpy array, got {type(output).__name__} "
                              "(use evstream.preprocessing.torch_kernels for torch tensors)")
    if not output.flags.writeable:
        raise KernelArgumentError(f"{fn_name}: output_array is read-only")
    check_output_meta(tuple(output.shape), output.dtype, fn_name, kinds=kinds, channels=channels,
                      even_channels=even_channels, why=why)
    return output


def check_output_meta(shape: tuple, dtype: np.dtype, fn_name: str, *, kinds: str, channels: int | None = None,
                      even_channels: bool = False, why: str = "") -> None:
    """Shape and dtype rules shared by the numpy and torch outputs (``dtype`` as a numpy dtype)."""
    if len(shape) != 4 or 0 in shape:
        raise KernelArgumentError(f"{fn_name}: output_array must be a non-empty [T, C, H, W] array, got shape {shape}")
    if dtype.kind not in kinds:
        names = {"f": "float", "i": "signed integer", "u": "unsigned integer"}
        allowed = " or ".join(names[k] for k in kinds)
        raise KernelArgumentError(f"{fn_name}: output_array dtype {dtype} not supported, needs {allowed}"
                              + (f" ({why})" if why else ""))
    if dtype.kind == "f" and dtype.itemsize not in (4, 8):
        raise KernelArgumentError(f"{fn_name}: output_array dtype {dtype} not supported, use float32 or float64")
    c = shape[1]
    if channels is not None and c != channels:
        raise KernelArgumentError(f"{fn_name}: output_array must have {channels} channels, got shape {shape}")
    if even_channels and c % 2:
        raise KernelArgumentError(f"{fn_name}: output_array needs an even channel count (polarity pairs), "
                              f"got shape {shape}")


def time_limit(total: float, include_end: bool) -> int:
    """Exclusive integer upper bound of the accepted timestamps: ``t < limit`` iff ``t < total``
    (or ``t <= total`` with ``include_end``)."""
    return (math.floor(total) + 1) if include_end else math.ceil(total)


def time_edges(total: float, nbins: int) -> np.ndarray:
    """Integer bin edges ``e`` (length ``nbins + 1``) of the rule ``bin(t) = min(t // dt, nbins - 1)``
    with ``dt = total / nbins``: ``bin(t) = b`` iff ``e[b] <= t < e[b + 1]`` for integer ``t >= 0``.
    ``e[0]`` and ``e[nbins]`` are the int64 extremes so that a kernel's bin search always stops.
    """
    dt = total / nbins
    edges = np.empty(nbins + 1, np.int64)
    edges[0], edges[nbins] = _INT64_MIN, _INT64_MAX
    for i in range(1, nbins):
        g = math.ceil(i * dt)
        while g > 0 and float(g - 1) // dt >= i:
            g -= 1
        while float(g) // dt < i:
            g += 1
        edges[i] = g
    return edges


def raise_if_out_of_range(x, y, t, width_full: int, height_full: int, t_limit: int, fn_name: str) -> None:
    """The ``"raise"`` policy: a vectorised pre-pass that raises on the first offending event."""
    bad = (x >= width_full) | (y >= height_full) | (t < 0) | (t >= t_limit)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EventArrayError(
            f"{fn_name}: {int(bad.sum())} event(s) outside the window/geometry (t in [0, {t_limit}), "
            f"x < {width_full}, y < {height_full}); first at index {i}: x={int(x[i])} y={int(y[i])} t={int(t[i])}")


def report_dropped(dropped: int, on_out_of_range: str, fn_name: str) -> int:
    """Applies the ``"warn"`` policy after a kernel ran and returns the count."""
    dropped = int(dropped)
    if dropped and on_out_of_range == "warn":
        warnings.warn(f"{fn_name}: dropped {dropped} event(s) outside the window or the sensor geometry",
                      RuntimeWarning, stacklevel=3)
    return dropped
