"""state_dict() / load_state_dict(): a run stopped after k batches and restarted yields exactly
batches k+1, ... of the uninterrupted run (inputs, keep-memory flags, positions), for both loaders,
at cut points 0, mid-recording, at a recording boundary, in the padding tail and at the last
batch, with 0 and 2 workers."""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch

from ddp_data import (DELTA_T, HEIGHT, NUM_TBINS, WIDTH, batch_key, flip_plane, make_recordings,
                      same_batches)
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.sequential_dataset import SequentialDataLoader
from evstream.data.stream import StreamDataLoader, StreamDataset
from evstream.errors import ArgumentError

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_recordings(str(tmp_path_factory.mktemp("resume")))


def sequential(files, num_workers=0, **kwargs):
    return SequentialDataLoader(files, DELTA_T, "histo", [NUM_TBINS, 2, HEIGHT, WIDTH],
                                batch_size=2, num_workers=num_workers, padding=True, seed=3,
                                shuffle_files=True, random_start=True, transforms=flip_plane,
                                **kwargs)


def stream(files, num_workers=0, **kwargs):
    return CDProcessorDataLoader(files, "delta_t", DELTA_T, 0, None, "histo", NUM_TBINS, 2,
                                 num_workers=num_workers, seed=3, shuffle=True,
                                 transforms=flip_plane, **kwargs)


def cut_points(batches):
    """0, a mid-recording cut (the next batch continues every slot), a cut at a recording
    boundary (the next batch starts a recording in some slot), one in the padding tail when
    there is one, and the last batch."""
    keeps = [key[1] for key in batches]
    mid = next(k for k in range(1, len(batches)) if all(keeps[k]) and
               all(info is not None for info in batches[k][2]))
    boundary = next(k for k in range(1, len(batches)) if 0.0 in keeps[k]
                    and any(info is not None for info in batches[k][2]))
    padding = [k for k in range(1, len(batches)) if None in batches[k][2]]
    return sorted({0, mid, boundary, len(batches) - 1} | set(padding[:1]))


def check_resume(make, full, k, num_workers, round_trip=json):
    first = make(num_workers)
    it = iter(first)
    head = [batch_key(next(it)) for _ in range(k)]
    state = round_trip.loads(round_trip.dumps(first.state_dict()))
    assert state["batches_yielded"] == k
    del it
    second = make(num_workers)
    second.load_state_dict(state)
    assert second.state_dict()["batches_yielded"] == k
    tail = [batch_key(b) for b in second]
    assert same_batches(head + tail, full), f"resume after {k} batches differs"
    if isinstance(second, CDProcessorDataLoader) and num_workers == 0:
        # the skipped chunks were not decoded again: the recordings were opened at the cut
        read = second.stats["workers"][0].get("chunks", 0)
        assert read == sum(info is not None for key in tail for info in key[2])
    return second


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("kind", ["sequential", "stream"])
def test_resume_equals_uninterrupted_run(files, kind, num_workers):
    make = partial(sequential if kind == "sequential" else stream, files)
    full = [batch_key(b) for b in make(0)]
    points = cut_points(full)
    assert len(points) >= 4
    for k in points:
        check_resume(lambda w: make(w), full, k, num_workers)


@pytest.mark.parametrize("kind", ["sequential", "stream"])
def test_resume_one_rank_of_two_with_a_padding_tail(files, kind):
    make = sequential if kind == "sequential" else stream

    def build(w):
        loader = make(files, w, rank=1, world_size=2)
        loader.set_epoch(2)
        return loader

    full = [batch_key(b) for b in build(0)]
    for k in cut_points(full):
        check_resume(build, full, k, 0)


@pytest.mark.parametrize("kind", ["sequential", "stream"])
def test_end_of_epoch_state_and_set_epoch(files, kind):
    make = sequential if kind == "sequential" else stream
    loader = make(files)
    full = [batch_key(b) for b in loader]
    state = loader.state_dict()
    assert state["batches_yielded"] == len(full)
    again = make(files)
    again.load_state_dict(state)           # finished: the next iter() is a new pass
    assert same_batches([batch_key(b) for b in again], full)
    # a resume position is dropped when another epoch is selected
    partial_run = make(files)
    it = iter(partial_run)
    next(it), next(it)
    state = partial_run.state_dict()
    other = make(files)
    other.load_state_dict(state)
    other.set_epoch(1)
    epoch1 = make(files)
    epoch1.set_epoch(1)
    assert same_batches([batch_key(b) for b in other], [batch_key(b) for b in epoch1])
    # the world size must match
    wrong = make(files, rank=0, world_size=2)
    with pytest.raises(ArgumentError):
        wrong.load_state_dict(state)


# ------------------------------------------------------------- generic streams without skip()
def counting(stream_id, lengths):
    for i in range(lengths[stream_id]):
        yield torch.tensor([stream_id, i])


@pytest.mark.parametrize("padding_mode", ["zeros", "data"])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_generic_stream_resume_by_discarding(padding_mode, num_workers):
    lengths = [5, 2, 7, 1, 3]

    def make(w):
        dataset = StreamDataset(list(range(5)), partial(counting, lengths=lengths), 2,
                                padding_mode, torch.tensor([-1, -1]), seed=1, shuffle=True)
        return StreamDataLoader(dataset, w, torch.stack)

    full = [b.clone() for b in make(0)]
    for k in range(len(full) + 1):
        first = make(num_workers)
        it = iter(first)
        head = [next(it).clone() for _ in range(k)]
        state = json.loads(json.dumps(first.state_dict()))
        del it
        second = make(num_workers)
        second.load_state_dict(state)
        tail = [b.clone() for b in second]
        both = head + tail
        assert len(both) == len(full) and all(torch.equal(a, b) for a, b in zip(both, full)), k
