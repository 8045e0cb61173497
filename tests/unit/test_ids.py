"""Ids read from the operating system a block at a time: random version-4 UUIDs, never the same
twice, across threads and across a fork."""

from __future__ import annotations

import os
import threading
import uuid

from clinic import ids


def test_an_id_is_a_random_version_4_uuid_in_its_usual_text_form():
    made = ids.new_id()
    parsed = uuid.UUID(made)
    assert str(parsed) == made and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len({ids.new_id() for _ in range(3 * ids.BLOCK)}) == 3 * ids.BLOCK


def test_one_system_call_serves_a_block_of_ids(monkeypatch):
    calls = []
    read = os.urandom

    def counted(size: int) -> bytes:
        calls.append(size)
        return read(size)

    monkeypatch.setattr(ids.os, "urandom", counted)
    for _ in range(4 * ids.BLOCK):
        ids.uuid4()
    assert 4 <= len(calls) <= 5 and set(calls) == {16 * ids.BLOCK}


def test_threads_drawing_at_once_never_get_the_same_id():
    drawn: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(len(drawn))

    def draw(into: list[str]) -> None:
        start.wait()
        into.extend(ids.new_id() for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [made for into in drawn for made in into]
    assert len(set(every)) == len(every) == 16_000


def test_a_forked_child_does_not_repeat_its_parents_ids():
    ids.uuid4()  # the parent now holds the rest of a block
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its first ids, then out without running the parent's cleanup
        os.close(reader)
        os.write(writer, "\n".join(ids.new_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(writer)
    parent_next = {ids.new_id() for _ in range(ids.BLOCK)}
    with os.fdopen(reader) as pipe:
        child_first = set(pipe.read().split("\n"))
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child_first) == 5 and not child_first & parent_next
