"""A real HTTP server on 127.0.0.1 that receives webhooks and answers as a test scripts it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every request (headers and body) and answers with the next scripted status
    (then ``default`` once the script is used up); ``url`` is where it listens."""

    def __init__(self, *answers: int, default: int = 200, headers: dict[str, str] | None = None) -> None:
        self.script = list(answers)
        self.default = default
        self.answer_headers = headers or {}
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.script.pop(0) if receiver.script else receiver.default
                self.send_response(status)
                for name, value in receiver.answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/clinic"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer_with(self, status: int) -> None:
        with self._lock:
            self.script, self.default = [], status

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.received]

    def __iter__(self) -> Iterator[tuple[dict[str, str], bytes]]:
        return iter(list(self.received))
