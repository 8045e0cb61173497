"""Log lines leave a process in batches (``clinic.logs.BatchedStreamHandler``): held lines go out
together within the interval, a warning at once with every line before it, never more than a
pipe's atomic write at a time, from a forked child too; ``CLINIC_LOG_FLUSH_SECONDS=0`` writes
each line at once. Real pipes, threads and a real fork."""

from __future__ import annotations

import logging
import os
import select
import time

import pytest

from clinic import logs

INTERVAL = 0.2


class Counted:
    """A text stream over a real pipe that keeps each ``write`` it is given."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return os.write(self.fd, text.encode())

    def flush(self) -> None:
        pass


def read_all(fd: int, wait: float) -> str:
    """What the pipe gives within ``wait`` seconds."""
    got, deadline = b"", time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            got += os.read(fd, 65536)
    return got.decode()


@pytest.fixture
def piped():
    """A logger whose one handler batches into a pipe: (logger, handler, stream, read end)."""
    read, write = os.pipe()
    stream = Counted(write)
    handler = logs.BatchedStreamHandler(stream, INTERVAL)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.logs.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, handler, stream, read
    logger.removeHandler(handler)
    os.close(read)
    os.close(write)


def test_info_lines_are_held_then_written_together_within_the_interval(piped):
    logger, _, stream, read = piped
    for n in range(10):
        logger.info("line %d", n)
    assert read_all(read, INTERVAL / 4) == ""  # held
    text = read_all(read, INTERVAL * 3)
    assert text == "".join(f"INFO line {n}\n" for n in range(10))
    assert len(stream.writes) == 1


def test_a_warning_is_written_at_once_after_every_line_before_it(piped):
    logger, _, stream, read = piped
    logger.info("first")
    logger.info("second")
    logger.warning("something is wrong")
    assert read_all(read, INTERVAL / 4) == "INFO first\nINFO second\nWARNING something is wrong\n"
    assert len(stream.writes) == 1


def test_a_write_is_whole_lines_of_at_most_a_pipes_atomic_size(piped):
    logger, _, stream, read = piped
    lines = [f"línea {n:04d} " + "é" * 90 for n in range(200)]  # 192 bytes each in UTF-8, 101 characters
    for line in lines:
        logger.info(line)
    logger.error("the end")
    assert read_all(read, INTERVAL / 2) == "".join(f"INFO {line}\n" for line in lines) + "ERROR the end\n"
    assert len(stream.writes) >= 38_000 // logs.BATCH_BYTES
    assert all(len(w.encode()) <= logs.BATCH_BYTES and w.endswith("\n") for w in stream.writes)


def test_write_at_once_writes_what_is_held_and_every_later_line_at_once(piped, monkeypatch):
    """What a Dramatiq worker process does when Dramatiq shuts it down: its last lines come
    after the last hook, and then the process ends without logging.shutdown."""
    logger, handler, _, read = piped
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    logger.info("held until then")
    logs.write_at_once()
    assert read_all(read, INTERVAL / 4) == "INFO held until then\n"
    logger.info("Worker has been shut down.")
    assert read_all(read, INTERVAL / 4) == "INFO Worker has been shut down.\n"


def test_a_forked_child_writes_its_own_held_lines(piped):
    """A Dramatiq worker process is forked from its group's main process: the flusher thread
    of the parent does not exist in the child, which needs its own."""
    logger, _, _, read = piped
    logger.info("parent")  # starts the parent's flusher
    assert read_all(read, INTERVAL * 3) == "INFO parent\n"
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            logger.info("child")
            time.sleep(INTERVAL * 4)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert read_all(read, INTERVAL / 4) == "INFO child\n"


def test_with_0_seconds_each_line_is_written_at_once():
    read, write = os.pipe()
    try:
        stream = Counted(write)
        handler = logs.handler(stream, 0)
        assert type(handler) is logging.StreamHandler
        record = logging.LogRecord("test", logging.INFO, __file__, 1, "at once", None, None)
        handler.handle(record)
        assert read_all(read, INTERVAL / 4) == "at once\n"
    finally:
        os.close(read)
        os.close(write)


def test_batch_lines_keeps_the_stream_format_and_level_of_dramatiqs_handler(monkeypatch):
    old = logging.StreamHandler(Counted(-1))
    old.setFormatter(formatter := logging.Formatter("[%(process)d] %(message)s"))
    old.setLevel(logging.DEBUG)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [old])
    logs.batch_lines(0.5)
    [new] = root.handlers
    assert isinstance(new, logs.BatchedStreamHandler)
    assert (new.stream, new.formatter, new.level, new.interval) == (old.stream, formatter, logging.DEBUG, 0.5)
