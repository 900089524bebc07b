"""The cyclic garbage collector paused around work that makes millions of objects and no
reference cycles: an import, a rebuild, a refold of records. A collection in the middle
re-scans every live object of the process (a quarter of a large import's time) and frees
nothing; reference counting frees what they drop."""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def collector_paused():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
