"""The long-lived processes move their start-up heap out of the collector's way."""

from __future__ import annotations

import gc

from botwarden.runtime import freeze_startup_heap


def test_the_startup_heap_is_frozen() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
