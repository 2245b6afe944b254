"""ProcessLocal: a value is seen only by the process that stored it (fork and pickle)."""

import multiprocessing
import pickle

from evstream.utils.process_local import ProcessLocal


def _child_view(holder, queue):
    queue.put((holder.get(), holder.pop()))


def test_value_is_forgotten_in_a_forked_child_and_kept_in_the_parent():
    holder = ProcessLocal()
    assert holder.get() is None
    handle = object()
    holder.set(handle)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_view, args=(holder, queue))
    child.start()
    assert queue.get(timeout=30) == (None, None)
    child.join(30)
    assert holder.get() is handle
    assert holder.pop() is handle and holder.get() is None


def test_pickling_drops_the_value():
    holder = ProcessLocal()
    holder.set([1, 2])
    copy = pickle.loads(pickle.dumps(holder))
    assert copy.get() is None and holder.get() == [1, 2]
    copy.set("mine")
    assert copy.get() == "mine"
