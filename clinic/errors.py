"""The domain's exceptions. None of them carries a patient's name: they end up in logs."""


class ClinicError(Exception):
    """Base of every error the booking rules raise on purpose."""


class ConfigError(ClinicError):
    """A ``CLINIC_*`` variable has a value the clinic cannot run with."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


class InvalidField(ClinicError):
    """A request names a field whose value breaks a booking rule (answered as 422)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class BookingNotFound(ClinicError):
    """No booking has that id (or the caller may not see it)."""


class DoctorUnavailable(ClinicError):
    """The doctor-availability system did not answer this time; asking again may succeed."""
