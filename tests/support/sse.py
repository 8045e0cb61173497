"""A Server-Sent Events reader for tests: frames collected by a thread from a real connection."""

from __future__ import annotations

import json
import threading
import time
from http.client import HTTPConnection


class EventReader:
    """Opens ``GET path`` and collects ``(id, event, data)`` frames and comment lines until the
    stream ends or ``close()``; ``status``/``headers`` are the response's."""

    def __init__(self, port: int, path: str = "/events", headers: dict[str, str] | None = None) -> None:
        self.connection = HTTPConnection("127.0.0.1", port, timeout=60)
        self.connection.request("GET", path, headers=headers or {})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.frames: list[tuple[int, str, dict, float]] = []  # id, event, data, monotonic arrival
        self.comments = 0
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()
        else:
            self.body = self.response.read()
            self.ended.set()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith(":"):
                    self.comments += 1
                elif text == "":
                    if fields:
                        self.frames.append(
                            (int(fields["id"]), fields["event"], json.loads(fields["data"]), time.monotonic())
                        )
                    fields = {}
                else:
                    name, _, value = text.partition(": ")
                    fields[name] = value
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()

    def of(self, booking_id: str) -> list[tuple[int, str]]:
        return [(i, kind) for i, kind, data, _ in list(self.frames) if data["data"]["booking_id"] == booking_id]

    def close(self) -> None:
        self.connection.close()
