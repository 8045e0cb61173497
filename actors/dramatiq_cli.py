"""``python -m actors.dramatiq_cli ARGS``: Dramatiq's own command line, with the project's log format
set up first, so the group's main process writes its lines as the workers do (``CLINIC_LOG_FORMAT``).

Text lines are Dramatiq's own, as before. For JSON the root logger gets the JSON handler here and
Dramatiq is told ``--skip-logging``; each worker process then gives its lines to the same handler,
writing to the pipe Dramatiq reads them from (``actors.worker.start``)."""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main

from clinic import logs
from clinic.config import Settings


def main() -> int:
    if Settings.from_env().log_format == "json":
        logs.configure("json")
        sys.argv.append("--skip-logging")
    return dramatiq_main()


if __name__ == "__main__":
    sys.exit(main())
