"""``clinic up`` for the poison test: the same children, but the processor group runs
``tests.cluster.poisoned_worker:start``, whose processor kills its own process (``kill -9``) on a
booking for the patient named by ``CLINIC_TEST_POISON_PATIENT``.

Why here and not a switch in the product: nothing a client sends, and no setting of the product,
can make a production worker kill itself; the poison exists only in this test's own entry point.
"""

from __future__ import annotations

import sys

from clinic import store
from clinic.config import PROCESS, STAGES, Settings
from clinic.ops import cli
from clinic.ops.supervisor import Supervisor


def main() -> int:
    port = int(sys.argv[sys.argv.index("--port") + 1])  # called as: poisoned_up up --port PORT
    settings = Settings.from_env()
    store.connect(settings.database_url)
    store.create_schema()
    cli.first_client_key()  # as `clinic up` does: the harness reads the key it prints
    children, sockets = cli.api_children(settings, "127.0.0.1", port, settings.api_processes)
    for stage in STAGES:
        argv = cli.worker_argv(settings, [stage])
        if stage == PROCESS:
            argv[argv.index("actors.worker:start")] = "tests.cluster.poisoned_worker:start"
        children[f"worker-{stage}"] = argv
    children["sweeper"] = cli.sweeper_argv()
    cli.worker_environment()
    return Supervisor(children, pass_fds=[sock.fileno() for sock in sockets]).run()


if __name__ == "__main__":
    sys.exit(main())
