"""Process-wide tuning for the long-lived processes (the API server and the workers)."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Put everything alive after start-up (the modules, numba's and pandas' internals, the
    settings) in the collector's permanent generation. A full collection then walks only
    what the process made since: on a runner's bar path it otherwise stopped the thread for
    tens of milliseconds, now and then, walking objects that live for the whole process."""
    gc.collect()
    gc.freeze()
