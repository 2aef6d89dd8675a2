"""How a worker child sets Python's garbage collector (``worker_gc_threshold``).

A pool of short jobs allocates a dozen or so container objects per job (the claimed row, its
decoded arguments, the job instance, its result), and the claimed and buffered ones live long
enough to survive a young collection. At CPython's default threshold (700) a young collection
came every ~50 jobs, each one promoting the buffer into the older generations, whose
collections then walked every object the app's imports made; all of it with the GIL held, so
the fetcher and completer stood still meanwhile. Measured in a 40,000-job drain: 4.4-6.0 us of
collector time per job at the default, 0.1-0.8 us with the objects of start-up frozen and a
young threshold of 10,000.

Only a child applies this: its process is ours. A worker started inside someone else's process
(async mode, a test) leaves that process's collector alone.
"""

from __future__ import annotations

import gc


def tune_for_worker(young_threshold: int) -> None:
    """Freeze what start-up made (the collector skips it from now on, and never frees it), and
    collect the young generation every ``young_threshold`` net allocations. 0 leaves Python's
    collector as it is.

    No collection first: it would write to every object the child inherited from the
    supervisor, copying the pages a ``preload`` app shares with it. Freezing only moves the
    generations' list heads, so it costs nothing. The price is that the little cyclic garbage
    the imports left stays for the child's life."""
    if young_threshold <= 0:
        return
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
