from __future__ import annotations

import os
import random
import threading
import time
import uuid

from botwarden import ids
from botwarden.ids import new_id


def test_ids_are_uuid7_hex_and_sort_in_the_order_made() -> None:
    made = [new_id() for _ in range(20_000)]  # many per millisecond: the counter orders them
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    parsed = uuid.UUID(made[0])
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert len(made[0]) == 32
    # The timestamp is the time made, to the millisecond (it runs ahead by at most 1 ms per
    # 4,096 ids made within one).
    assert abs(int(made[-1][:12], 16) - time.time_ns() // 1_000_000) < 1_000


def test_a_full_counter_moves_to_the_next_millisecond(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    frozen = time.time_ns()
    monkeypatch.setattr(ids.time, "time_ns", lambda: frozen)
    monkeypatch.setattr(ids, "_last_ms", 0)
    made = [new_id() for _ in range(5_000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert int(made[0][:12], 16) == frozen // 1_000_000
    assert int(made[4_095][:12], 16) == frozen // 1_000_000
    assert int(made[4_096][:12], 16) == frozen // 1_000_000 + 1


def test_threads_never_share_an_id() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every)


def test_a_forked_child_draws_other_random_bits() -> None:
    random.seed(1)  # the `random` module's seed does not reach the ids' generator
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    parent = new_id()
    assert child[16:] != parent[16:]  # the random bits (the timestamp may be equal)


def test_seeding_the_random_module_does_not_repeat_ids_random_bits() -> None:
    random.seed(7)
    first = new_id()
    random.seed(7)
    second = new_id()
    assert first[16:] != second[16:]
