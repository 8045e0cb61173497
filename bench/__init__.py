"""``python -m bench``: the booking pipeline measured against its HTTP and broker floors, on one machine."""

from pathlib import Path

#: The repository root: every child process runs here, so ``bench``, ``clinic`` and ``api`` import.
REPO = Path(__file__).resolve().parent.parent
