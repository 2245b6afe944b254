"""RecycledArrays (the batch arrays of stack_inputs): an array is reused only when nothing refers to it any more."""

import numpy as np
import pytest
import torch

from evstream.utils.recycled import RecycledArrays
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.sequential_dataset_common import stack_inputs

from seqloader_data import synthetic_events, write_raw

SHAPE = (3, 2, 4, 5)


def _address(array) -> int:
    return array.__array_interface__["data"][0]


def test_a_dropped_array_is_reused():
    pool = RecycledArrays(keep=2)
    first = pool.empty(SHAPE, np.float32)
    address = _address(first)
    del first
    again = pool.empty(SHAPE, np.float32)
    assert _address(again) == address and again.shape == SHAPE and again.dtype == np.float32
    assert _address(pool.empty(SHAPE, np.float32)) != address       # `again` is still held


@pytest.mark.parametrize("hold", ["tensor", "view", "numpy of a view", "storage", "slice"])
def test_an_array_still_referenced_in_any_form_is_never_reused(hold):
    pool = RecycledArrays(keep=3)
    batch = torch.from_numpy(pool.empty(SHAPE, np.float32))
    batch.fill_(7.0)
    held = {"tensor": lambda b: b, "view": lambda b: b[1], "numpy of a view": lambda b: b[0].numpy(),
            "storage": lambda b: b.untyped_storage(), "slice": lambda b: b[:, 1:]}[hold](batch)
    address = batch.data_ptr()
    del batch
    for _ in range(5):
        other = pool.empty(SHAPE, np.float32)
        assert _address(other) != address
        other.fill(-1.0)
        del other
    kept = held if hold != "storage" else torch.tensor([], dtype=torch.float32).set_(held)
    assert (torch.as_tensor(kept) == 7.0).all()


def test_the_pool_is_bounded_and_other_shapes_replace_free_arrays():
    pool = RecycledArrays(keep=2)
    held = [pool.empty(SHAPE, np.uint8) for _ in range(4)]       # all held: 2 kept, 2 plain
    assert len(pool) == 2 and len({_address(a) for a in held}) == 4
    del held
    other = pool.empty((7,), np.float32)                         # replaces a free array
    assert len(pool) == 2 and other.shape == (7,)
    assert pool.empty(SHAPE, np.uint8).shape == SHAPE


def test_at_least_hands_out_a_free_array_of_n_to_2n_elements():
    pool = RecycledArrays(keep=2)
    first = pool.at_least(100, np.int64)                # a new array of 150
    address = _address(first)
    assert first.shape == (100,) and first.dtype == np.int64 and len(first.base) == 150
    del first
    again = pool.at_least(140, np.int64)                # 150 elements serve 75..150
    assert _address(again) == address and again.shape == (140,)
    tail = again[50:]                                   # a view of the view holds the array
    del again
    assert _address(pool.at_least(80, np.int64)) != address
    del tail
    assert _address(pool.at_least(74, np.int64)) != address      # 150 > 2 x 74: another one
    assert _address(pool.at_least(75, np.int64)) == address


def test_stack_inputs_batches_kept_by_the_caller_stay_intact():
    rng = np.random.default_rng(0)
    kept, expected = [], []
    for step in range(12):
        items = [torch.from_numpy(rng.random((3, 2, 4, 5), dtype=np.float32)) for _ in range(4)]
        batch = stack_inputs(items)
        if step % 3 == 0:                     # keep a view of some, drop the others
            kept.append(batch[2])
            expected.append(torch.stack(items, dim=1)[2].clone())
    assert all(torch.equal(a, b) for a, b in zip(kept, expected))


def test_loader_batches_held_by_the_user_equal_their_clones(tmp_path):
    paths = [write_raw(tmp_path / f"r{k}.raw", synthetic_events(400_000, 50, 48, 64, seed=5 + k),
                       48, 64) for k in range(3)]

    def loader():
        return CDProcessorDataLoader(paths, "delta_t", 20_000, 0, None, "histo", 3, 2,
                                     num_workers=0, height=48, width=64)

    clones = [b["inputs"].clone() for b in loader()]
    held = list(loader())                                # every batch held at once
    assert len(held) == len(clones) > 4
    assert len({b["inputs"].data_ptr() for b in held}) == len(held)
    assert all(torch.equal(b["inputs"], c) for b, c in zip(held, clones))
    views = [b["inputs"][0] for k, b in enumerate(loader()) if k % 2]   # views only
    assert all(torch.equal(v, c[0]) for v, c in zip(views, clones[1::2]))
