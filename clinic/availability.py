"""The doctors' own systems, simulated: a calendar that sometimes fails to answer, and the
office's think time before it confirms."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

from clinic.errors import DoctorUnavailable


class AvailabilitySystem:
    """Answers whether a doctor can take a slot (failing transiently with probability
    ``failure_rate``) and waits, uniformly within ``confirm_delay`` seconds, before a confirmation."""

    def __init__(
        self,
        failure_rate: float,
        confirm_delay: tuple[float, float] = (0.0, 0.0),
        *,
        draw: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.failure_rate = failure_rate
        self.confirm_delay = confirm_delay
        self.draw = draw
        self.sleep = sleep

    def check(self, doctor_id: int, slot: datetime) -> None:
        """Return when the doctor's calendar answers; raise DoctorUnavailable when it does not."""
        if self.failure_rate and self.draw() < self.failure_rate:
            raise DoctorUnavailable(f"availability system did not answer for doctor {doctor_id}")

    def await_confirmation(self) -> float:
        """Wait as the doctor's office does before it confirms; return the seconds waited."""
        low, high = self.confirm_delay
        seconds = random.uniform(low, high) if high > 0 else 0.0
        if seconds:
            self.sleep(seconds)
        return seconds
