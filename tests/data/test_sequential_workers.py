"""SequentialDataLoader's workers (evstream.data.sequential_crew): batches written into the
loader's shared arrays (no shared-memory tensor per batch), each worker its own slots, the same
batches as one process (new, kept or spawned workers; the caller keeping batches), kept workers
across epochs, a rank's share that changes, a dead kept worker, close and del."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

from evstream.data import SequentialDataLoader
from evstream.data.sequential_crew import join_parts, slot_groups

from worker_processes import wait_dead
from seqloader_data import synthetic_events, write_dat

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]

DELTA_T = 10_000
ARRAY_DIM = [2, 2, 120, 160]           # 320x240 sensor, k = 1


def pid_labels(metadata, start, duration, tensor):
    """One label per bin: the id of the process that loaded the chunk."""
    num = len(range(0, duration, metadata.delta_t))
    return [torch.tensor([os.getpid()])] * num, np.zeros(num, dtype=bool)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seqworkers")
    paths = []
    for i, ms in enumerate((130, 90, 170, 110, 150, 70)):
        path = os.fspath(folder / f"rec{i}_td.dat")
        write_dat(path, synthetic_events(ms * 1000, rate_per_ms=30, seed=i))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def equal_recordings(tmp_path_factory):
    """Recordings of one duration: the ranks' shares then change with the epoch (ties)."""
    folder = tmp_path_factory.mktemp("seqworkers_equal")
    paths = []
    for i in range(6):
        path = os.fspath(folder / f"rec{i}_td.dat")
        write_dat(path, synthetic_events(100_000, rate_per_ms=30, seed=10 + i))
        paths.append(path)
    return paths


def make(paths, workers, persistent=False, **kwargs):
    kwargs.setdefault("batch_size", 4)
    kwargs.setdefault("load_labels", pid_labels)
    return SequentialDataLoader(paths, DELTA_T, "histo", ARRAY_DIM, num_workers=workers,
                                persistent_workers=persistent, timeout=60, **kwargs)


def digest(batch) -> tuple:
    """What a batch holds but the process ids (labels): inputs, masks, infos."""
    infos = tuple((m.path, s, d) for m, s, d in batch["video_infos"])
    return (batch["inputs"].clone(), batch["mask_keep_memory"].clone(),
            batch["frame_is_labeled"].clone(), infos)


def batch_pids(batch) -> list[int]:
    """Process id of each slot (0 for a padding slot)."""
    return [int(label[0]) if isinstance(label, torch.Tensor) else 0
            for label in batch["labels"][0]]


def play(loader) -> list[tuple]:
    return [(digest(b), batch_pids(b)) for b in loader]


def same(a, b) -> bool:
    """Whether two plays (lists of ``(digest, pids)``) hold the same batches."""
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and torch.equal(x[2], y[2])
        and x[3] == y[3] for (x, _), (y, _) in zip(a, b))


# ------------------------------------------------------------------------------ pure pieces
def test_slot_groups_split_a_batch_into_one_run_of_neighbouring_slots_per_worker():
    assert slot_groups(4, 2) == [(0, 2), (2, 4)]
    assert slot_groups(5, 2) == [(0, 3), (3, 5)]
    assert slot_groups(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert slot_groups(3, 3) == [(0, 1), (1, 2), (2, 3)]
    assert slot_groups(1, 2) == [(0, 1)]          # fewer slots than workers: whole batches
    assert slot_groups(3, 4) == [(0, 3)]


def test_join_parts_concatenates_the_groups_in_slot_order():
    def part(values, infos):
        n = len(values)
        return {"inputs": torch.tensor(values, dtype=torch.float32).view(1, n, 1),
                "labels": [[f"l{v}" for v in values]],
                "mask_keep_memory": np.array(values, np.float32).reshape(n, 1, 1, 1),
                "frame_is_labeled": np.array([[v > 1 for v in values]]),
                "video_infos": tuple(infos)}
    batch = join_parts([part([1, 2], ["a", "b"]), part([3], ["c"])], None)
    assert batch["inputs"].tolist() == [[[1.0], [2.0], [3.0]]]
    assert batch["labels"] == [["l1", "l2", "l3"]]
    assert batch["mask_keep_memory"].view(-1).tolist() == [1.0, 2.0, 3.0]
    assert batch["frame_is_labeled"].tolist() == [[False, True, True]]
    assert batch["mask_keep_memory"].dtype == torch.float32
    assert batch["frame_is_labeled"].dtype == torch.bool
    assert batch["video_infos"] == ("a", "b", "c")
    single = join_parts([part([4, 5], "de")], None)
    assert single["inputs"].tolist() == [[[4.0], [5.0]]] and single["video_infos"] == ("d", "e")
    shared = torch.zeros(1, 3, 1)
    assert join_parts([part([1, 2], "ab"), part([3], "c")], shared)["inputs"] is shared


# ------------------------------------------------------------------------------ loaders
@pytest.mark.parametrize("batch_size,padding", [(4, False), (3, True), (1, False)])
def test_workers_give_the_batches_of_one_process(recordings, batch_size, padding):
    """Groups of 2 + 2 and 2 + 1 slots (padding slots too), and whole batches in turn when
    a batch has fewer slots than there are workers."""
    reference = play(make(recordings, 0, batch_size=batch_size, padding=padding))
    assert len(reference) >= 5
    for persistent in (False, True):
        loader = make(recordings, 2, persistent, batch_size=batch_size, padding=padding)
        assert same(play(loader), reference)
        assert same(play(loader), reference)
        loader.close()


def test_a_workers_batch_is_one_of_the_loaders_shared_arrays(recordings):
    """The defect: each worker allocated a new shared-memory tensor per batch (27 ms to allocate
    and fill a [3, 4, 2, 360, 640] float32 one, against 2.6 ms for a reused array), and the
    main process mapped each of them again. Now a few arrays are allocated once, before the
    workers start, and the batches are those arrays."""
    loader = make(recordings, 2)
    for epoch in range(2):
        n = 0
        for batch in loader:
            arrays = [t.untyped_storage().data_ptr() for t in loader._crew.arrays.tensors]
            assert batch["inputs"].untyped_storage().data_ptr() in arrays
            n += 1
        assert n == len(loader) >= 5
    assert len(arrays) <= 5                                 # 2 batches in flight + 1 + 2 spare


def test_each_worker_makes_its_own_slots_of_every_batch(recordings):
    """With 2 workers and 4 slots, slots 0-1 come from one process and 2-3 from the other, in
    every batch: each worker reads its recordings chunk after chunk, without seeking. Kept
    workers do so epoch after epoch, from the same processes."""
    loader = make(recordings, 2, persistent=True)
    seen = []
    for _ in range(2):
        for _, pids in play(loader):
            live = [p for p in pids if p]
            assert len(live) == 4
            assert pids[0] == pids[1] != pids[2] == pids[3]
            seen.append(tuple(pids))
    assert len(set(seen)) == 1 and os.getpid() not in seen[0]
    loader.close()


def test_batches_kept_by_the_caller_are_never_overwritten(recordings):
    """More batches held than the loader has arrays: the later ones come in tensors of their
    own, and every kept batch still holds its values at the end of the epoch."""
    reference = play(make(recordings, 0))
    kept = list(make(recordings, 2))
    assert same([(digest(b), batch_pids(b)) for b in kept], reference)


def test_kept_workers_play_each_epochs_shuffled_schedule(recordings):
    reference = make(recordings, 0, shuffle_files=True, random_start=True, seed=3)
    loader = make(recordings, 2, persistent=True, shuffle_files=True, random_start=True, seed=3)
    pids = set()
    for epoch in (0, 1, 2):
        reference.set_epoch(epoch)
        loader.set_epoch(epoch)
        expected = play(reference)
        got = play(loader)
        assert same(got, expected)
        pids.update(p for _, ps in got for p in ps if p)
    assert len(pids) == 2                                   # the same two processes throughout
    loader.close()


def test_kept_workers_follow_a_ranks_share_that_changes_with_the_epoch(equal_recordings):
    """With shuffle_files, a rank's recordings change from epoch to epoch; kept workers know the
    files of the epoch they started in only, so a share with new files starts new workers
    (they used to fail on a file they had not checked)."""
    options = dict(rank=0, world_size=2, shuffle_files=True, seed=11, batch_size=2)
    reference = make(equal_recordings, 0, **options)
    loader = make(equal_recordings, 2, persistent=True, **options)
    shares = set()
    for epoch in range(6):
        reference.set_epoch(epoch)
        loader.set_epoch(epoch)
        shares.add(frozenset(reference.dataset.rank_files()))
        assert same(play(loader), play(reference))
    assert len(shares) > 1                                  # the test does change the share
    loader.close()


def test_a_resume_from_a_state_with_kept_workers(recordings):
    reference = play(make(recordings, 0))
    loader = make(recordings, 2, persistent=True)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    assert same(play(loader), reference)                    # an early stop, then a full epoch
    loader.load_state_dict(state)
    assert same(play(loader), reference[3:])
    loader.close()


def test_a_kept_worker_that_dies_between_epochs_is_replaced(recordings):
    reference = play(make(recordings, 0))
    loader = make(recordings, 2, persistent=True)
    first = play(loader)
    pids = {p for _, ps in first for p in ps if p}
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    assert wait_dead({victim})
    time.sleep(0.2)                                  # a SIGCHLD handler would fire here
    second = play(loader)
    assert same(second, reference)
    assert {p for _, ps in second for p in ps if p}.isdisjoint(pids)
    loader.close()


def test_close_and_del_stop_the_kept_workers(recordings):
    loader = make(recordings, 2, persistent=True)
    pids = {p for _, ps in play(loader) for p in ps if p}
    loader.close()
    assert wait_dead(pids, limit_s=5.0)
    loader = make(recordings, 2, persistent=True)
    pids = {p for _, ps in play(loader) for p in ps if p}
    del loader
    assert wait_dead(pids, limit_s=3.0)


def test_spawned_workers_write_into_the_shared_arrays_too(recordings, monkeypatch):
    """Spawned workers get the arrays through their pickled dataset."""
    reference = play(make(recordings, 0))
    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", _spawn_init(
        torch.utils.data.DataLoader.__init__))
    loader = make(recordings, 2)
    got = []
    for batch in loader:
        arrays = [t.untyped_storage().data_ptr() for t in loader._crew.arrays.tensors]
        assert batch["inputs"].untyped_storage().data_ptr() in arrays
        got.append((digest(batch), batch_pids(batch)))
    assert same(got, reference)


def _spawn_init(init):
    def spawned(self, *args, **kwargs):
        if kwargs.get("num_workers"):
            kwargs["multiprocessing_context"] = "spawn"
        init(self, *args, **kwargs)
    return spawned


def test_kept_workers_play_a_shuffled_and_a_rescheduled_dataset(recordings):
    """The schedule reaches kept workers with every batch: ``shuffle`` and ``reschedule`` on
    the loader's dataset change what they play, as in one process."""
    reference = make(recordings, 0)
    loader = make(recordings, 2, persistent=True)
    assert same(play(loader), play(reference))
    for change in (lambda d: d.shuffle(seed=5), lambda d: d.reschedule(2, seed=7)):
        change(reference.dataset)
        change(loader.dataset)
        expected = play(reference)
        assert same(play(loader), expected) and len(expected) >= 3
    loader.close()


def test_kept_workers_give_seeded_augmentation_epoch_after_epoch(recordings):
    """The transforms' seed changes with the epoch and reaches kept workers with each task."""
    from ddp_data import flip_plane
    options = dict(transforms=flip_plane, shuffle_files=True, seed=4)
    reference = make(recordings, 0, **options)
    loader = make(recordings, 2, persistent=True, **options)
    plays = []
    for epoch in (0, 1, 2):
        reference.set_epoch(epoch)
        loader.set_epoch(epoch)
        expected = play(reference)
        assert same(play(loader), expected)
        plays.append(expected)
    assert not same(plays[0], plays[1])                     # the epochs do differ
    loader.close()


class FailingLabels:
    """``pid_labels``, raising for one recording while ``fail`` names a file that exists."""

    def __init__(self, fail_path):
        self.fail_path = fail_path

    def __call__(self, metadata, start, duration, tensor):
        if os.path.exists(self.fail_path) and metadata.path.endswith("rec2_td.dat"):
            raise ValueError("labels of rec2 are broken")
        return pid_labels(metadata, start, duration, tensor)


def test_a_failed_epoch_stops_the_kept_workers_and_the_next_gets_new_ones(recordings, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("1")
    reference = play(make(recordings, 0))
    loader = make(recordings, 2, persistent=True, load_labels=FailingLabels(os.fspath(flag)))
    with pytest.raises(ValueError, match="labels of rec2 are broken"):
        play(loader)
    failed = loader._crew
    flag.unlink()                           # workers read the flag: the next epoch succeeds
    assert same(play(loader), reference) and loader._crew is not failed
    loader.close()
