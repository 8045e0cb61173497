"""The FHIR view of a live ``clinic up``: a booking, once confirmed, reads as a booked Appointment."""

from __future__ import annotations

from fhir.resources.R4B.appointment import Appointment

from tests.support import slot


def test_a_confirmed_booking_reads_as_a_booked_fhir_appointment(clinic):
    accepted = clinic.book("Ana Pérez", slot(11, 30)).json()
    assert clinic.wait_final(accepted["booking_id"])["status"] == "confirmed"

    answer = clinic.http("GET", f"/fhir/r4/Appointment/{accepted['booking_id']}")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/fhir+json"
    appointment = Appointment.model_validate(answer.json())
    assert appointment.status == "booked"
    assert appointment.identifier[0].value == accepted["booking_id"]
    assert [p.actor.reference for p in appointment.participant] == [None, "Practitioner/1"]
    assert "Ana Pérez" not in clinic.log_text()  # the patient's name stays out of the logs
