"""Argument problems are ArgumentErrors wherever they are found (kernels, processor, viz), and
the kernels' stay EventArrayErrors as before; problems of the events themselves are not
ArgumentErrors."""

import numpy as np
import pytest

from evstream.errors import ArgumentError, EventArrayError
from evstream.io import EventCD
from evstream.preprocessing import CDProcessor, histo
from evstream.preprocessing.viz import viz_histo


def _events(n=4):
    ev = np.zeros(n, EventCD)
    ev["x"], ev["y"], ev["t"] = np.arange(n), 1, np.arange(n) * 10
    return ev


@pytest.mark.parametrize("kwargs", [dict(downsampling_factor=99), dict(total_tbins_delta_t=0)])
def test_kernel_arguments_are_argument_errors(kwargs):
    out = np.zeros((2, 2, 8, 8), np.float32)
    args = dict(total_tbins_delta_t=100, downsampling_factor=0)
    args.update(kwargs)
    with pytest.raises(ArgumentError) as info:
        histo(_events(), out, **args)
    assert isinstance(info.value, EventArrayError)


def test_output_array_and_processor_arguments_are_argument_errors():
    with pytest.raises(ArgumentError, match="read-only"):
        out = np.zeros((2, 2, 8, 8), np.float32)
        out.flags.writeable = False
        histo(_events(), out, 100)
    with pytest.raises(ArgumentError, match="on_out_of_range"):
        CDProcessor(8, 8, 2, "histo", on_out_of_range="ignore-silently")
    with pytest.raises(ArgumentError, match="shape"):
        viz_histo(np.zeros((3, 3, 3, 3)))


def test_bad_events_are_not_argument_errors():
    out = np.zeros((2, 2, 8, 8), np.float32)
    with pytest.raises(EventArrayError) as info:
        histo(np.zeros(3, np.float32), out, 100)
    assert not isinstance(info.value, ArgumentError)
