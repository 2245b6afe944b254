"""The generic stream loader (evstream.data.stream, evstream.data.stream_plan).

Dummy streams of ``m * T`` items like OpenEB's stream_dataloader tests (reference §17.5): an item
is ``(stream id, position)``; the fill value is ``(-1, -1)``. Checked: constant batch size, a fixed
batch position per stream, every stream read completely and in order, any (B, W, streams), the
same batches for every worker count, the "data" padding mode, errors naming the stream, early
stops that do not hang, and the shared-memory ring under back-pressure.
"""

from __future__ import annotations

import itertools
import time
from functools import partial

import numpy as np
import pytest
import torch

from evstream.data.stream import (StreamDataLoader, StreamDataset, StreamReadError,
                                  stream_output)
from evstream.data.stream_plan import make_stream_plan, split_batch_size, split_dataset_sizes
from evstream.errors import ArgumentError

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]

FILL = torch.tensor([-1, -1])


def counting_streamer(stream, lengths):
    """Items ``tensor([stream, i])`` for ``i < lengths[stream]``."""
    for i in range(lengths[stream]):
        yield torch.tensor([stream, i])


def stack(items):
    return torch.stack(items)


def make_loader(lengths, batch_size, num_workers, padding_mode="zeros", **kwargs):
    streams = list(range(len(lengths)))
    dataset = StreamDataset(streams, partial(counting_streamer, lengths=lengths), batch_size,
                            padding_mode, FILL, **kwargs)
    return StreamDataLoader(dataset, num_workers, stack)


def play(loader):
    return [b.clone() for b in loader]


def check_streams(batches, lengths, batch_size, plan=None):
    """Constant batch size, fixed slot per stream, every stream complete and in order."""
    assert batches, "no batch"
    slot_of = {}
    seen = {s: [] for s in range(len(lengths))}
    for b in batches:
        assert b.shape == (batch_size, 2)
        for slot, (stream, pos) in enumerate(b.tolist()):
            if stream < 0:
                continue
            assert slot_of.setdefault(stream, slot) == slot, "a stream changed batch position"
            seen[stream].append(pos)
    for s, n in enumerate(lengths):
        assert seen[s] == list(range(n)), f"stream {s} not read completely and in order"
        if plan is not None and n:
            assert slot_of[s] == plan.slot_of_stream(s)


# --------------------------------------------------------------------------------- the plan
def test_plan_is_pure_and_covers_every_stream():
    for n, b, w in itertools.product(range(1, 8), range(1, 6), range(0, 6)):
        plan = make_stream_plan(n, b, w)
        assert plan == make_stream_plan(n, b, w)
        assert sorted(i for s in plan.slot_streams for i in s) == list(range(n))
        assert plan.num_workers == min(max(w, 1), b)
        assert sorted(s for ws in plan.worker_slots for s in ws) == list(range(b))
        # stream -> slot does not depend on the worker count
        assert plan.slot_streams == make_stream_plan(n, b, 1).slot_streams
        for s in range(b):
            assert s in plan.worker_slots[plan.worker_of_slot(s)]


def test_plan_shuffle_is_seeded():
    a = make_stream_plan(20, 4, 2, seed=3, epoch=1, shuffle=True)
    assert a == make_stream_plan(20, 4, 2, seed=3, epoch=1, shuffle=True)
    assert a.order != make_stream_plan(20, 4, 2, seed=3, epoch=2, shuffle=True).order
    assert a.order != make_stream_plan(20, 4, 2, seed=4, epoch=1, shuffle=True).order
    assert sorted(a.order) == list(range(20))
    assert make_stream_plan(20, 4, 2, seed=3, shuffle=False).order == tuple(range(20))
    with pytest.raises(ArgumentError):
        make_stream_plan(0, 4, 2)
    with pytest.raises(ArgumentError):
        make_stream_plan(3, 0, 2)


def test_openeb_split_helpers():
    for b in range(1, 10):
        for w in range(1, b + 1):
            sizes = split_batch_size(b, w)
            assert sum(sizes) == b and max(sizes) - min(sizes) <= 1
    streams = list(range(13))
    for sizes in ([3, 2, 2], [1], [4, 4], [5, 1, 1]):
        groups = split_dataset_sizes(streams, sizes)
        assert [x for g in groups for x in g] == streams
    assert split_batch_size(3, 7) == [1, 1, 1]      # works when W > B


# --------------------------------------------------------------------------------- the loader
@pytest.mark.parametrize("workers, n_streams, batch_size", [(2, 11, 4), (3, 13, 7)])
def test_openeb_cases(workers, n_streams, batch_size):
    num_tbins = 5
    lengths = [num_tbins * (1 + (i * 7) % 4) for i in range(n_streams)]
    loader = make_loader(lengths, batch_size, workers)
    check_streams(play(loader), lengths, batch_size, loader.plan())


def test_more_slots_than_streams_and_more_workers_than_slots():
    lengths = [3, 5]
    batches = play(make_loader(lengths, 7, 0))        # OpenEB asserts here
    check_streams(batches, lengths, 7)
    assert len(batches) == 5
    assert (batches[0][2:] == -1).all()               # slots without a stream are fill
    batches = play(make_loader([4, 2, 3], 2, 5))       # only 2 workers are started
    check_streams(batches, [4, 2, 3], 2)


def test_any_combination_in_process():
    for n, b in itertools.product(range(1, 6), range(1, 6)):
        lengths = [(i * 3) % 5 for i in range(n)]      # includes empty streams
        batches = play(make_loader(lengths, b, 0))
        if sum(lengths):
            check_streams(batches, lengths, b)
            # the epoch ends with the longest slot
            plan = make_stream_plan(n, b, 0)
            assert len(batches) == max(sum(lengths[i] for i in s) for s in plan.slot_streams)
        else:
            assert batches == []


def test_batches_do_not_depend_on_the_worker_count():
    lengths = [6, 2, 9, 4, 4, 7]
    reference = play(make_loader(lengths, 3, 0, seed=5, shuffle=True))
    for workers in (1, 2, 3):
        got = play(make_loader(lengths, 3, workers, seed=5, shuffle=True))
        assert len(got) == len(reference)
        assert all(torch.equal(a, b) for a, b in zip(got, reference))


def test_data_padding_mode_replays_until_every_slot_finished():
    lengths = [2, 6, 3]
    batches = play(make_loader(lengths, 2, 0, padding_mode="data"))
    # slot 0 plays streams 0 and 2 (5 items), slot 1 stream 1 (6 items): 6 steps, slot 0 replays
    assert len(batches) == 6
    assert (torch.stack(batches)[:, :, 0] >= 0).all()     # never a fill row
    assert batches[5][0].tolist() == [0, 0]                # slot 0 restarted its first stream
    for workers in (0, 2):
        got = play(make_loader(lengths, 2, workers, padding_mode="data"))
        assert all(torch.equal(a, b) for a, b in zip(got, batches)) and len(got) == 6
    with pytest.raises(ArgumentError):                     # a slot without streams needs a fill
        StreamDataset([0], partial(counting_streamer, lengths=[1]), 2, "data", None)
    # "data" mode with an empty slot list and fill: fill rows, ends when the other slot is done
    got = play(make_loader([3], 2, 0, padding_mode="data"))
    assert len(got) == 3 and (torch.stack(got)[:, 1] == -1).all()


def failing_streamer(stream):
    if stream == 2:
        raise ValueError("boom")
    yield torch.tensor([stream, 0])


@pytest.mark.parametrize("workers", [0, 2])
def test_errors_name_the_stream(workers):
    dataset = StreamDataset(["a.raw", "b.raw", 2, "d.raw"],
                            lambda s: failing_streamer(2 if s == 2 else 0), 2, "zeros", FILL)
    with pytest.raises(Exception) as info:
        play(StreamDataLoader(dataset, workers, stack))
    assert "boom" in str(info.value) and "StreamReadError" in (type(info.value).__name__ +
                                                               str(info.value))
    if workers == 0:
        assert isinstance(info.value, StreamReadError) and info.value.path == "2"


def endless(stream):
    i = 0
    while True:
        yield torch.tensor([stream, i])
        i += 1


def test_breaking_out_early_does_not_wait_for_workers():
    dataset = StreamDataset([0, 1, 2], endless, 2, "data", FILL)
    loader = StreamDataLoader(dataset, 2, stack)
    start = time.perf_counter()
    for i, _ in enumerate(loader):
        if i == 20:
            break
    assert time.perf_counter() - start < 30.0   # the workers are endless: waiting would hang


def ring_streamer(stream, lengths, shape):
    for i in range(lengths[stream]):
        out = stream_output(shape)
        out.fill_(stream * 1000 + i)
        yield out, stream


def ring_collate(items):
    return torch.stack([t for t, _ in items]), [s for _, s in items]


@pytest.mark.parametrize("ring_depth", [1, 3])
def test_shared_ring_buffers_are_never_overwritten_before_collation(ring_depth):
    lengths = [40, 25, 33]
    shape = (4, 8, 8)
    fill = (torch.full(shape, -1.0), -1)
    dataset = StreamDataset([0, 1, 2], partial(ring_streamer, lengths=lengths, shape=shape), 3,
                            "zeros", fill)
    loader = StreamDataLoader(dataset, 2, ring_collate, ring_depth=ring_depth)
    steps = 0
    for step, (values, streams) in enumerate(loader):
        time.sleep(0.002 if step % 7 == 0 else 0)          # let the workers run ahead
        for slot, s in enumerate(streams):
            expected = -1.0 if s < 0 else s * 1000 + step
            assert (values[slot] == expected).all(), (step, slot)
        steps += 1
    assert steps == 40
    assert all(w["ring_wait_s"] >= 0 for w in loader.stats["workers"])


def test_arguments_are_checked():
    with pytest.raises(ArgumentError):
        StreamDataset([], endless, 2, "zeros", FILL)
    with pytest.raises(ArgumentError):
        StreamDataset([0], endless, 2, "zeros", None)
    with pytest.raises(ArgumentError):
        StreamDataset([0], endless, 2, "loop", FILL)
    with pytest.raises(ArgumentError):
        StreamDataLoader(StreamDataset([0], endless, 1, "zeros", FILL), -1, stack)
    assert np.array_equal(make_loader([2], 1, 0).plan().order, [0])


# --------------------------------------------------------------------------------- warm-up
_PARENT_CALLS = []


def _recording_streamer(stream, parent_pid):
    import os

    if os.getpid() == parent_pid:
        _PARENT_CALLS.append(stream)
    yield torch.tensor([stream, 0])


@pytest.mark.parametrize("warm_up, context, parent_calls",
                         [(True, "fork", [0]), (False, "fork", []), (True, "spawn", []),
                          (True, None, None)])
def test_warm_up_computes_one_item_in_the_parent_before_forking_only(warm_up, context,
                                                                     parent_calls):
    import multiprocessing
    import os

    if parent_calls is None:        # the process's default start method decides
        parent_calls = [0] if multiprocessing.get_start_method() == "fork" else []
    _PARENT_CALLS.clear()
    dataset = StreamDataset([0, 1, 2], partial(_recording_streamer, parent_pid=os.getpid()), 2,
                            "zeros", FILL)
    loader = StreamDataLoader(dataset, 1, stack, multiprocessing_context=context,
                              warm_up=warm_up)
    for _ in range(2):                                  # once per loader, not per epoch
        batches = play(loader)
        assert sorted(int(r[0]) for b in batches for r in b if r[0] >= 0) == [0, 1, 2]
    assert _PARENT_CALLS == parent_calls
    _PARENT_CALLS.clear()
    play(StreamDataLoader(dataset, 0, stack, warm_up=True))    # no workers: no extra item
    assert _PARENT_CALLS == [0, 1, 2]


def _failing_streamer(stream):
    raise OSError(f"cannot read stream {stream}")
    yield


def test_a_failing_warm_up_leaves_the_error_to_the_workers():
    dataset = StreamDataset([0, 1], _failing_streamer, 2, "zeros", FILL)
    loader = StreamDataLoader(dataset, 1, stack, multiprocessing_context="fork", warm_up=True)
    with pytest.raises(StreamReadError, match="cannot read stream"):
        play(loader)
