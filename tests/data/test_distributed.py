"""Sharding over ranks (evstream.data.sharding) for both loaders, and determinism.

Pure parts are checked by building the loaders of every rank in one process with explicit
``rank`` / ``world_size``; one test runs a real 2-process gloo job (torch.multiprocessing) doing an
all_reduce per batch, which would hang if a rank yielded fewer batches.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddp_data import (DELTA_T, DURATIONS, HEIGHT, NUM_TBINS, WIDTH, batch_key, ddp_worker,
                      flip_plane, make_recordings, same_batches)
from evstream.data.cd_processor_dataset import CDProcessorDataLoader, count_chunks
from evstream.data.scheduler import _rounding
from evstream.data.sequential_dataset import SequentialDataLoader
from evstream.data.sharding import assign_to_ranks, epoch_seed, permutation, resolve_rank
from evstream.errors import ArgumentError

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]

CHUNK = DELTA_T * NUM_TBINS


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_recordings(str(tmp_path_factory.mktemp("ddp")))


def sequential(files, **kwargs):
    options = dict(batch_size=2, num_workers=0, padding=True)
    options.update(kwargs)
    return SequentialDataLoader(files, DELTA_T, "histo", [NUM_TBINS, 2, HEIGHT, WIDTH],
                                **options)


def stream(files, **kwargs):
    options = dict(num_workers=0)
    options.update(kwargs)
    batch_size = options.pop("batch_size", 2)
    return CDProcessorDataLoader(files, "delta_t", DELTA_T, 0, None, "histo", NUM_TBINS,
                                 batch_size, **options)


def chunks_of(batches):
    return [info for key in batches for info in key[2] if info is not None]


# ------------------------------------------------------------------------------ pure functions
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=30), st.integers(1, 6), st.integers(0, 5),
       st.integers(0, 3), st.booleans())
def test_assign_to_ranks_is_a_balanced_partition(weights, world, seed, epoch, shuffle):
    ranks = assign_to_ranks(weights, world, seed, epoch, shuffle)
    assert len(ranks) == world
    assert sorted(i for r in ranks for i in r) == list(range(len(weights)))   # once each
    counts = [len(r) for r in ranks]
    assert max(counts) - min(counts) <= 1
    assert ranks == assign_to_ranks(weights, world, seed, epoch, shuffle)      # deterministic
    if weights and world > 1 and len(set(weights)) == len(weights) and len(weights) <= world:
        assert all(len(r) <= 1 for r in ranks)


def test_assign_to_ranks_longest_first():
    # 100 first to rank 0, then 40, 30, 20 to the lighter rank 1 (full at ceil(5/2) = 3), 10
    assert assign_to_ranks([10, 100, 30, 20, 40], 2) == [[0, 1], [2, 3, 4]]
    assert assign_to_ranks([5, 5, 5, 5], 2) == [[0, 2], [1, 3]]
    assert assign_to_ranks([], 3) == [[], [], []]
    with pytest.raises(ArgumentError):
        assign_to_ranks([1, -1], 2)


def test_resolve_rank_and_seeds():
    assert resolve_rank() == (0, 1)                       # no process group
    assert resolve_rank(1, 3) == (1, 3)
    for bad in [(3, 3), (-1, 2), (0, 0)]:
        with pytest.raises(ArgumentError):
            resolve_rank(*bad)
    assert epoch_seed(7, 0) == 7 and epoch_seed(7, 1) == epoch_seed(7, 1) != epoch_seed(7, 2)
    assert permutation(10, 1, 2) == permutation(10, 1, 2) != permutation(10, 1, 3)


# ------------------------------------------------------------------------- simulated ranks
@pytest.mark.parametrize("world", [2, 3])
def test_sequential_ranks_split_the_recordings(files, world):
    per_rank = [[batch_key(b) for b in sequential(files, rank=r, world_size=world, seed=2,
                                                   shuffle_files=True, balanced=True)]
                for r in range(world)]
    lengths = {len(p) for p in per_rank}
    assert len(lengths) == 1, "every rank yields the same number of batches"
    owner = {}
    for r, batches in enumerate(per_rank):
        for path, _ in chunks_of(batches):
            assert owner.setdefault(path, r) == r, "a recording read by two ranks"
    assert set(owner) == set(files)
    # every chunk of every recording exactly once (padding=True reads everything)
    read = Counter(chunks_of([k for p in per_rank for k in p]))
    expected = Counter((f, s) for f, d in zip(files, DURATIONS)
                       for s in range(0, int(_rounding(d - 1, CHUNK)), CHUNK))
    assert read == expected
    # padding items: zeros and keep_memory 1, as the single-process padding items
    for batches in per_rank:
        for key in batches:
            for slot, info in enumerate(key[2]):
                if info is None:
                    assert key[1][slot] == 1.0 and not key[0][:, slot].any()


@pytest.mark.parametrize("world", [2, 3])
def test_stream_ranks_split_the_recordings(files, world):
    per_rank = [[batch_key(b) for b in stream(files, rank=r, world_size=world, seed=2,
                                               shuffle=True)] for r in range(world)]
    loaders = [stream(files, rank=r, world_size=world, seed=2, shuffle=True)
               for r in range(world)]
    assert {len(p) for p in per_rank} == {len(loaders[0])}
    read = Counter(chunks_of([k for p in per_rank for k in p]))
    lengths = [count_chunks(f, "delta_t", DELTA_T, 0, NUM_TBINS, "histo") for f in files]
    expected = Counter((f, i * CHUNK) for f, n in zip(files, lengths) for i in range(n))
    assert read == expected
    assert lengths == [-(-d // CHUNK) for d in DURATIONS]
    owner = {}
    for r, batches in enumerate(per_rank):
        for path, _ in chunks_of(batches):
            assert owner.setdefault(path, r) == r
    # padding items of the stream loader: keep_memory 0, all-False frame_is_labeled
    for batches in per_rank:
        for key in batches:
            for slot, info in enumerate(key[2]):
                if info is None:
                    assert key[1][slot] == 0.0 and not key[3][:, slot].any()


def test_more_ranks_than_recordings(files):
    world = len(files[:3]) + 1
    seq = [sequential(files[:3], rank=r, world_size=world, batch_size=2) for r in range(world)]
    assert {len(s) for s in seq} == {len(seq[0])} and {s.batch_size for s in seq} == {1}
    assert [b for b in seq[-1]] and all(m.is_padding() for b in seq[-1]
                                        for m, _, _ in b["video_infos"])
    streams = [stream(files[:3], rank=r, world_size=world) for r in range(world)]
    assert {len(list(s)) for s in streams} == {len(streams[0])}


def test_a_process_group_is_needed_for_defaults_only(files):
    with pytest.raises(ArgumentError):                       # lengths unknown for 2 ranks
        from evstream.data.stream import StreamDataset
        StreamDataset(files, iter, 2, "zeros", 0, rank=0, world_size=2)


# ----------------------------------------------------------------------------- determinism
def test_same_batches_for_any_worker_count_and_rerun(files):
    common = dict(seed=5, epoch=2, rank=1, world_size=2)
    runs = [[batch_key(b) for b in sequential(files, num_workers=w, shuffle_files=True,
                                              random_start=True, transforms=flip_plane,
                                              **common)] for w in (0, 1, 2, 0)]
    assert all(same_batches(runs[0], r) for r in runs[1:])
    runs = [[batch_key(b) for b in stream(files, num_workers=w, shuffle=True,
                                          transforms=flip_plane, **common)] for w in (0, 1, 2, 0)]
    assert all(same_batches(runs[0], r) for r in runs[1:])


def test_set_epoch_reshuffles_slots_not_time_order(files):
    loader = sequential(files, seed=1, shuffle_files=True)
    epochs = []
    for epoch in (0, 1, 0):
        loader.set_epoch(epoch)
        epochs.append([batch_key(b) for b in loader])
    assert same_batches(epochs[0], epochs[2]) and not same_batches(epochs[0], epochs[1])
    for batches in epochs:       # each recording's chunks stay in time order, in one slot
        seen = {}
        for key in batches:
            for slot, info in enumerate(key[2]):
                if info is not None:
                    seen.setdefault(info[0], []).append((slot, info[1]))
        for path, chunks in seen.items():
            assert len({s for s, _ in chunks}) == 1
            starts = [t for _, t in chunks]
            assert starts == sorted(starts) and len(set(starts)) == len(starts)
    s = stream(files, seed=1, shuffle=True)
    first = [batch_key(b) for b in s]
    s.set_epoch(1)
    assert not same_batches(first, [batch_key(b) for b in s])


def test_random_start_offsets_are_whole_bins_and_seeded(files):
    loader = sequential(files, seed=4, random_start=True)
    starts = {}
    for batch in loader:
        for meta, start, _ in batch["video_infos"]:
            if not meta.is_padding():
                starts.setdefault(meta.path, meta.start_ts)
                assert (start - meta.start_ts) % CHUNK == 0
    assert all(s % DELTA_T == 0 and 0 <= s < CHUNK for s in starts.values())
    assert any(s for s in starts.values())


# ------------------------------------------------------------------------------ real gloo
def test_two_gloo_ranks_never_deadlock(files, tmp_path):
    import torch.multiprocessing as mp
    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "init"), files, str(out)), nprocs=2,
             join=True)
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    for name in ("sequential", "stream"):
        a, b = results[0][name], results[1][name]
        assert (a["rank"], a["world_size"], b["rank"], b["world_size"]) == (0, 2, 1, 2)
        assert a["batches"] == b["batches"] == a["len"] == b["len"]
        assert set(a["sums"]) == set(b["sums"]) == {2}
        paths_a = {p for p, _ in a["chunks"]}
        paths_b = {p for p, _ in b["chunks"]}
        assert not paths_a & paths_b and paths_a | paths_b == set(files)
        assert len(a["chunks"]) + len(b["chunks"]) == len({tuple(c) for c in a["chunks"] +
                                                             b["chunks"]})
