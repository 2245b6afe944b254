"""Batches written in place by the stream loader's workers (BatchPool): the array of a step is
one that nothing refers to any more, or none (the items are then copied); the batches equal
those made in one process, held or not."""

import numpy as np
import pytest
import torch

from evstream.data.batch_buffers import in_place_batch
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.sequential_dataset_common import stack_inputs
from evstream.data.stream import StreamDataLoader, StreamDataset, stream_output
from evstream.data.stream_ring import BatchPool, PoolRef

from seqloader_data import synthetic_events, write_raw

ITEM = (3, 2, 4, 5)


def _batch(pool: BatchPool, array: int) -> torch.Tensor:
    rows = [pool.row(PoolRef(array, slot)) for slot in range(2)]
    for slot, row in enumerate(rows):
        row.fill_(10 * array + slot)          # what the workers would write
    return stack_inputs(rows)


def test_a_step_gets_an_array_nobody_holds_or_none():
    pool = BatchPool(ITEM, torch.float32, batch_size=2, depth=2, spare=1)
    assign = pool.share.assign
    assert assign.tolist() == [0, 1]                  # steps 0 and 1
    b0 = _batch(pool, 0)
    assert b0.data_ptr() == pool.share.tensors[0].data_ptr()       # no copy
    assert b0.shape == (3, 2, 2, 4, 5) and (b0[:, 1] == 1).all()
    pool.release(0)
    assert assign[0] == 2                             # step 2: array 0 is held, 1 is step 1's
    b1 = _batch(pool, 1)
    pool.release(1)
    assert assign[1] == -1                            # step 3: 0 and 1 held, 2 is step 2's
    view = b0[0].numpy()                              # any view keeps array 0 held
    del b0
    b2 = _batch(pool, 2)
    pool.release(2)
    assert assign[0] == -1
    del view
    pool.release(3)                                   # step 3 had no array
    assert assign[1] == 0                             # step 5: array 0 is free again
    assert (b1 == torch.tensor([10.0, 11.0]).view(1, 2, 1, 1, 1)).all() and (b2[:, 0] == 20).all()


def test_items_that_are_not_rows_are_copied_into_the_batch():
    pool = BatchPool(ITEM, torch.float32, batch_size=3, depth=1, spare=0)
    row = pool.row(PoolRef(0, 1))
    row.fill_(5.0)
    others = [torch.full(ITEM, 1.0), torch.full(ITEM, 2.0)]
    batch = stack_inputs([others[0], row, others[1]])
    assert batch.data_ptr() == pool.share.tensors[0].data_ptr()
    assert [float(batch[:, i].mean()) for i in range(3)] == [1.0, 5.0, 2.0]
    assert in_place_batch([torch.zeros(ITEM)] * 3) is None
    assert in_place_batch([row[:, :1]] * 3) is None                # not a whole row
    assert stack_inputs([row, row, row], dtype=torch.float64).dtype == torch.float64


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool")
    return [write_raw(folder / f"r{k}.raw", synthetic_events(duration, 40, 48, 64, seed=k), 48, 64)
            for k, duration in enumerate((900_000, 500_000, 700_000))]   # slots end apart: fills


def _loader(paths, workers, context="fork"):
    return CDProcessorDataLoader(paths, "delta_t", 20_000, 0, None, "histo", 3, 2,
                                 num_workers=workers, height=48, width=64,
                                 multiprocessing_context=context if workers else None)


def test_worker_batches_are_written_in_place_and_equal_the_in_process_ones(recordings):
    expected = [b["inputs"].clone() for b in _loader(recordings, 0)]
    assert len(expected) > 12
    in_place = 0
    for batch, want in zip(_loader(recordings, 2), expected, strict=True):
        inputs = batch["inputs"]
        in_place += in_place_batch([inputs[:, i] for i in range(2)]) is inputs
        assert torch.equal(inputs, want)
    assert in_place == len(expected)                 # the usual loop: every batch, no copy


def test_batches_held_at_once_or_in_part_stay_intact(recordings):
    expected = [b["inputs"].clone() for b in _loader(recordings, 0)]
    held = [b["inputs"] for b in _loader(recordings, 2)]           # more than the pool holds
    assert all(torch.equal(h, e) for h, e in zip(held, expected, strict=True))
    parts = [b["inputs"][1].numpy() if k % 2 else b["inputs"][:, 0]
             for k, b in enumerate(_loader(recordings, 1))]
    assert all(np.array_equal(np.asarray(p), (e[1] if k % 2 else e[:, 0]).numpy())
               for k, (p, e) in enumerate(zip(parts, expected, strict=True)))


def test_spawned_workers_write_in_place_too(recordings):
    expected = [b["inputs"].clone() for b in _loader(recordings, 0)]
    got = [(b["inputs"].clone(), in_place_batch([b["inputs"][:, i] for i in range(2)])
            is b["inputs"]) for b in _loader(recordings, 1, "spawn")]
    assert all(torch.equal(g, e) for (g, _), e in zip(got, expected, strict=True))
    assert all(flag for _, flag in got)


def test_the_pool_serves_the_next_epoch_and_spares_batches_still_held(recordings):
    expected = [b["inputs"].clone() for b in _loader(recordings, 0)]
    loader = _loader(recordings, 2)
    kept = [b["inputs"] for k, b in enumerate(loader) if k in (0, 5)]
    pool = loader._idle_pool
    assert pool is not None
    again = [b["inputs"].clone() for b in loader]                  # second epoch, same arrays
    assert loader._idle_pool is pool
    assert all(torch.equal(a, e) for a, e in zip(again, expected, strict=True))
    assert torch.equal(kept[0], expected[0]) and torch.equal(kept[1], expected[5])


def _eager_streamer(stream):
    """A stream of one item made when the streamer is called (RVT's random samples)."""
    out = stream_output((2, 3))
    out.fill_(float(stream))
    return [out]


def test_an_item_made_when_the_streamer_is_called_is_written_in_place():
    """Before: the streamer was called outside the item's context, so such an item was a plain
    tensor sent through torch's pickling (a shared-memory file per item), never the ring."""
    dataset = StreamDataset([1, 2, 3, 4, 5], _eager_streamer, 2, "zeros", torch.zeros(2, 3))
    loader = StreamDataLoader(dataset, 1, stack_inputs, batch_output=((2, 3), torch.float32),
                              multiprocessing_context="fork")
    batches = []
    for batch in loader:
        assert in_place_batch([batch[:, i] for i in range(2)]) is batch
        batches.append(batch[0, :, 0].tolist())
    assert batches == [[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]]
