"""One tensor file, one set of numbers: ``SequentialDataLoader``, ``HDF5Iterator`` and
``CDProcessorDataLoader`` give bit-identical tensors for every output size each accepts (issue 14).

The files are written by the project's writers (``DatWriter`` recording -> ``write_to_hdf5``) as
float32 rows (histo), uint8 rows (histo with ``store_as_uint8``) and integer rows
(histo_quantized). Sizes: the stored size, /2, /4, /3, a non-integer shrink and an upscale (each
loader where it accepts it; ``SequentialDataLoader`` accepts sizes whose ratio to the *sensor* is an
integer, so its non-integer shrink and its upscale come from files stored below the sensor size).

Before the one resize rule, the three loaders resized with three rules (OpenCV INTER_AREA for any
ratio, OpenCV for powers of two only, torch area / bilinear) and truncated resized integer rows in
``SequentialDataLoader``: this file fails there.

Only public names of the loaders are imported here, so that it runs against older trees too.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evstream.data import CDProcessorDataLoader, SequentialDataLoader
from evstream.data.hdf5_iterator import HDF5Iterator
from evstream.io import DatWriter, EventCD
from evstream.preprocessing.hdf5 import write_to_hdf5

H0, W0 = 48, 96            # sensor
DT, T, ROWS = 1000, 2, 8   # bin µs, bins per chunk, rows of every file (4 chunks)

#: (preprocessing, store_as_uint8): float32 rows, uint8-stored rows, integer rows
KINDS = [("histo", False), ("histo", True), ("histo_quantized", False)]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A DAT recording of 48x96 with events up to the last µs of row 7 (so 8 rows)."""
    folder = tmp_path_factory.mktemp("resize_rule")
    rng = np.random.default_rng(14)
    n = 6000
    ev = np.zeros(n, EventCD)
    ev["t"] = np.sort(rng.integers(0, ROWS * DT, n))
    ev["t"][-1] = ROWS * DT - 1
    # clustered events, so that neighbouring pixels differ and every resize changes the numbers
    ev["x"] = np.clip(rng.normal(W0 / 2, W0 / 5, n), 0, W0 - 1).astype(np.uint16)
    ev["y"] = np.clip(rng.normal(H0 / 2, H0 / 5, n), 0, H0 - 1).astype(np.uint16)
    ev["p"] = rng.integers(0, 2, n)
    path = folder / "rec_td.dat"
    with DatWriter(path, H0, W0) as w:
        w.write(ev)
    return str(path), folder


def tensor_file(recording, name, store_as_uint8, stored_hw):
    path, folder = recording
    out = folder / f"{name}_{int(store_as_uint8)}_{stored_hw[0]}x{stored_hw[1]}"
    result = write_to_hdf5(path, output_folder=str(out), delta_t=DT, preprocess=name,
                           height=stored_hw[0], width=stored_hw[1],
                           store_as_uint8=store_as_uint8)
    return result.outputs[0]


def through_hdf5_iterator(path, hw):
    chunks = list(HDF5Iterator(path, num_tbins=T, height=hw[0], width=hw[1]))
    assert len(chunks) == ROWS // T
    return chunks


def through_cd_processor_loader(path, name, cin, hw):
    loader = CDProcessorDataLoader([path], "delta_t", DT, 0, None, name, T, 1, num_workers=0,
                                   height=hw[0], width=hw[1])
    chunks = [batch["inputs"][:, 0] for batch in loader]
    assert len(chunks) == ROWS // T and chunks[0].shape == (T, cin) + hw
    return chunks


def through_sequential_loader(path, name, cin, hw):
    loader = SequentialDataLoader([path], DT, name, [T, cin, hw[0], hw[1]], batch_size=1,
                                  num_workers=0)
    chunks = [batch["inputs"][:, 0] for batch in loader]
    assert len(chunks) == ROWS // T
    return chunks


def assert_identical(chunks, reference, what):
    assert len(chunks) == len(reference), what
    for k, (a, b) in enumerate(zip(chunks, reference)):
        assert a.dtype == torch.float32 or not a.is_floating_point(), what
        # integer rows at their stored size stay integers in SequentialDataLoader (the
        # original's dtype rule); as float32 they are exact
        assert torch.equal(a.to(torch.float32), b), f"{what}: chunk {k} differs"


def cin_of(name):
    from evstream.preprocessing import get_preprocess_dict
    return get_preprocess_dict(name)["cin"]


# stored at the sensor size: stored, /2, /4, /3 for all three loaders; a non-integer shrink and
# an upscale for the two that accept any size
SENSOR_SIZES = [(48, 96), (24, 48), (12, 24), (16, 32)]
ANY_SIZES = [(20, 40), (30, 50), (60, 120), (40, 120)]


@pytest.mark.parametrize("name,store_as_uint8", KINDS)
def test_three_loaders_give_the_same_tensors_at_every_size(recording, name, store_as_uint8):
    path = tensor_file(recording, name, store_as_uint8, (H0, W0))
    cin = cin_of(name)
    for hw in SENSOR_SIZES + ANY_SIZES:
        reference = through_hdf5_iterator(path, hw)
        assert all(r.dtype == torch.float32 and r.shape == (T, cin) + hw for r in reference)
        assert_identical(through_cd_processor_loader(path, name, cin, hw), reference,
                         f"CDProcessorDataLoader {hw}")
        if hw in SENSOR_SIZES:
            assert_identical(through_sequential_loader(path, name, cin, hw), reference,
                             f"SequentialDataLoader {hw}")
    # the stored values and the resized ones are different numbers (every size was a resize)
    full = through_hdf5_iterator(path, (H0, W0))[1]
    half = through_hdf5_iterator(path, (24, 48))[1]
    assert not torch.equal(F.interpolate(full, size=(24, 48), mode="nearest"), half)


@pytest.mark.parametrize("name,store_as_uint8", KINDS)
def test_files_stored_below_the_sensor_size(recording, name, store_as_uint8):
    """SequentialDataLoader's non-integer shrink (stored /2 -> sensor /3) and upscale (stored /4
    -> sensor /2, sensor /3) are those of the other two loaders."""
    cin = cin_of(name)
    cases = [((24, 48), [(24, 48), (16, 32), (12, 24)]),      # stored, x2/3 shrink, /2
             ((12, 24), [(12, 24), (24, 48), (16, 32)])]      # stored, x2 upscale, x4/3 upscale
    for stored, sizes in cases:
        path = tensor_file(recording, name, store_as_uint8, stored)
        for hw in sizes:
            reference = through_hdf5_iterator(path, hw)
            assert_identical(through_sequential_loader(path, name, cin, hw), reference,
                             f"SequentialDataLoader stored {stored} -> {hw}")
            assert_identical(through_cd_processor_loader(path, name, cin, hw), reference,
                             f"CDProcessorDataLoader stored {stored} -> {hw}")


def test_the_rule_area_when_shrinking_bilinear_when_growing(recording):
    """The numbers themselves: an integer-ratio shrink is the mean of each block; a size where
    an axis grows is bilinear with align_corners=True (the original CDProcessorDataLoader's)."""
    path = tensor_file(recording, "histo", False, (H0, W0))
    stored = torch.cat(through_hdf5_iterator(path, (H0, W0)))
    assert stored.abs().sum() > 0
    for k in (2, 3, 4):
        small = torch.cat(through_hdf5_iterator(path, (H0 // k, W0 // k))).numpy()
        blocks = stored.numpy().reshape(ROWS, 2, H0 // k, k, W0 // k, k).astype(np.float64)
        np.testing.assert_allclose(small, blocks.mean((3, 5)), rtol=1e-6, atol=1e-7)
    grown = torch.cat(through_hdf5_iterator(path, (40, 120)))
    assert torch.equal(grown, F.interpolate(stored, size=(40, 120), mode="bilinear",
                                            align_corners=True))
    odd = torch.cat(through_hdf5_iterator(path, (20, 40)))
    assert torch.equal(odd, F.interpolate(stored, size=(20, 40), mode="area"))


def test_resized_integer_rows_are_not_truncated(recording):
    """histo_quantized rows resized to /3 are float32 means (not integers cut back into the
    stored dtype), through SequentialDataLoader too."""
    path = tensor_file(recording, "histo_quantized", False, (H0, W0))
    chunks = through_sequential_loader(path, "histo_quantized", cin_of("histo_quantized"),
                                       (16, 32))
    values = torch.cat(chunks)
    assert values.dtype == torch.float32
    assert torch.any(values != torch.round(values))
