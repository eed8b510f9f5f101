"""How many CPU threads torch and FAISS use, chosen per call instead of left to the library defaults.

torch's default is one OpenMP thread per core.  That suits a big batch on an
idle machine, but one question is too little work to share: the threads meet
at a barrier after every layer, and when any other process holds one of the
two cores of a laptop, every barrier waits for the scheduler.  On the 2-core
bench machine a single question took several times longer with 2 threads than
with 1 (bench/results-latency.md).  So interactive calls run on
``Settings.query_threads`` and bulk embedding on ``Settings.index_threads``;
0 means every core this process may use.

FAISS behaves the same way: searching 10k vectors for one question took ten
times longer on 2 OpenMP threads than on 1 on the loaded bench machine, so a
question's search belongs inside :func:`faiss_threads` too.

Why exactly one thread per core is the worst case on busy cores: GNU OpenMP
spins long at each barrier while it has no more threads than cores, and spins
far less once it has more (GOMP_SPINCOUNT), which is why 4 threads measured
better than 2 there, though still worse than 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve(threads: int) -> int:
    """A thread setting as a count: 0 means every usable core."""
    if threads < 0:
        raise ValueError(f"thread count must be 0 (every core) or positive, not {threads}")
    return threads or usable_cores()


@contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` torch threads (0 = every core), then restore the previous count."""
    import torch

    with _limited(torch.get_num_threads, torch.set_num_threads, threads) as used:
        yield used


@contextmanager
def faiss_threads(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` FAISS (OpenMP) threads (0 = every core), then restore the previous count.

    Meant around the search of one question: ``with faiss_threads(settings.query_threads): ...``.
    """
    import faiss

    with _limited(faiss.omp_get_max_threads, faiss.omp_set_num_threads, threads) as used:
        yield used


@contextmanager
def _limited(get: Callable[[], int], set_: Callable[[int], None], threads: int) -> Iterator[int]:
    """Set a thread count for the block and restore it after, even on an error.

    The count is global to the process (strictly, to the calling OpenMP
    thread and the threads started later), so a concurrent call in another
    Python thread may briefly run with the other setting: slower, never wrong.
    """
    wanted, previous = resolve(threads), get()
    if wanted != previous:
        set_(wanted)
    try:
        yield wanted
    finally:
        if get() != previous:
            set_(previous)
