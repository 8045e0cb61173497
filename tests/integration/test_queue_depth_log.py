"""Waitress's "Task queue depth" warning, summarised (``api.serve.QueueDepthLog``): at saturation
waitress warns once per request that finds every thread busy; the API passes on one line a
second that says how deep the queue got and how many warnings it stands for."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request

from api.serve import QueueDepthLog
from clinic import logs
from tests.support import REPO, free_port, wait_until

#: Seconds the slow app takes per request: with one thread, the others queue behind it.
SLOW = 0.15


def slow_app():
    """``--app`` of the served test: a WSGI app that takes ``SLOW`` seconds per request, with
    the API's log lines."""
    logs.configure("text")

    def app(environ, start_response):
        time.sleep(SLOW)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    return app


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_first_warning_goes_out_at_once_then_one_a_second_with_the_deepest_queue():
    logger = logging.getLogger("test.queue_depth")
    logger.propagate = False
    logger.addHandler(lines := Lines())
    now = [100.0]
    summary = QueueDepthLog(logger, interval=1.0, clock=lambda: now[0])

    summary.warning("Task queue depth is %d", 1)
    for depth, at in ((3, 100.2), (7, 100.5), (2, 100.9)):
        now[0] = at
        summary.warning("Task queue depth is %d", depth)
    assert lines.lines == ["Task queue depth is 1: every thread was busy for 1 request(s) since the last such line"]

    now[0] = 101.0
    summary.warning("Task queue depth is %d", 4)
    assert lines.lines[1] == "Task queue depth is 7: every thread was busy for 4 request(s) since the last such line"
    now[0] = 101.5
    summary.warning("Task queue depth is %d", 9)
    assert len(lines.lines) == 2  # the next line is due at 102.0


def test_a_saturated_api_process_writes_a_line_a_second_not_one_per_queued_request(tmp_path):
    """The real server (``python -m api.serve``), one thread, twelve requests at once."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "CLINIC_API_THREADS": "1"}
    argv = [sys.executable, "-m", "api.serve", "--port", str(port), "--app", f"{__name__}:slow_app"]
    with open(log, "wb") as out:
        server = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "Serving on" in log.read_text(), timeout=30, what="the server")
        url = f"http://127.0.0.1:{port}/"
        answers: list[bytes] = []
        requests = [
            threading.Thread(target=lambda: answers.append(urllib.request.urlopen(url, timeout=30).read()))
            for _ in range(12)
        ]
        for request in requests:
            request.start()
        for request in requests:
            request.join(60)
        assert answers == [b"ok"] * 12
    finally:
        server.terminate()
        server.wait(timeout=30)
    warnings = [line for line in log.read_text().splitlines() if "Task queue depth is" in line]
    # Twelve requests on one thread take 1.8 s: waitress alone would warn for each queued request
    # (eleven lines); summarised, the first goes out at once and at most one more a second follows.
    assert 1 <= len(warnings) <= 3, warnings
    assert "every thread was busy" in warnings[0]
