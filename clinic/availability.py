"""The doctors' own systems, simulated: a calendar that sometimes fails to answer, and the
confirmer's think time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

from clinic.errors import DoctorUnavailable


class AvailabilitySystem:
    """Answers whether a doctor can take a slot; fails transiently with probability ``failure_rate``."""

    def __init__(self, failure_rate: float, *, draw: Callable[[], float] = random.random) -> None:
        self.failure_rate = failure_rate
        self.draw = draw

    def check(self, doctor_id: int, slot: datetime) -> None:
        """Return when the doctor's calendar answers; raise DoctorUnavailable when it does not."""
        if self.failure_rate and self.draw() < self.failure_rate:
            raise DoctorUnavailable(f"availability system did not answer for doctor {doctor_id}")


def confirmation_delay(bounds: tuple[float, float], *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait a uniformly random time within ``bounds`` seconds (the doctor's office confirming)."""
    low, high = bounds
    seconds = random.uniform(low, high) if high > 0 else 0.0
    if seconds:
        sleep(seconds)
    return seconds
