"""The front desk's page in headless Chromium against a real ``clinic up`` (waitress, the Dramatiq
workers, RabbitMQ, a SQLite file): sign in, book a free cell and watch it turn confirmed through
the pipeline, cancel, reschedule, replay a dead letter as admin, a client key sees only its own
bookings, the keyboard alone books, and a phone's width still reads. Screenshots are saved in the
test's directory (and in ``$DESK_SCREENSHOTS`` when set: the README's come from there)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from datetime import datetime
from pathlib import Path

import pika
import pytest
from dramatiq import Message
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from clinic import bookings, store
from clinic.config import Settings
from tests.support import http, slot
from tests.support.browser import chromium, missing
from tests.support.keys import bearer, shared_clinic

#: Generous: two shared cores, a real pipeline. A wait ends as soon as its condition holds.
WAIT = 60
#: How long each status change took to reach the page (ms), for the report.
LATENCIES: list[float] = []


@pytest.fixture(scope="module")
def desk(tmp_path_factory, rabbitmq):
    """One ``clinic up`` for the module, with a staff, an admin and two client keys."""
    if problem := missing():
        pytest.fail(problem)
    keys = {"front desk": "staff", "ops": "admin", "alice": "client", "bob": "client"}
    # The server ends each event stream after 4 s, so the page reconnects (with Last-Event-ID) again
    # and again during every test: a change made while it was away must still reach it.
    with shared_clinic(tmp_path_factory.mktemp("desk"), rabbitmq, keys, CLINIC_STREAM_MAX_SECONDS="4") as clinic:
        yield clinic
    if LATENCIES:
        print(
            f"\nstatus change to page: {len(LATENCIES)} changes, median {statistics.median(LATENCIES):.0f} ms, "
            f"max {max(LATENCIES):.0f} ms"
        )


@pytest.fixture
def browser():
    with chromium() as driver:
        yield driver


def day_of(when: str) -> str:
    return when.split(" ")[0]


def open_desk(driver, clinic, token: str, day: str) -> None:
    driver.get(f"http://127.0.0.1:{clinic.port}/desk?date={day}")
    field = driver.find_element(By.NAME, "api-key")
    field.send_keys(token, Keys.ENTER)  # Enter submits
    wait(driver).until(ec.visibility_of_element_located((By.ID, "day-view")))
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#day-body td"))
    assert not driver.find_element(By.ID, "sign-in").is_displayed()


def wait(driver, timeout: float = WAIT) -> WebDriverWait:
    """Polls until the condition holds; an element redrawn meanwhile (the page redraws a cell when
    its booking changes) is looked up again on the next poll."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))


def cell(driver, when: str, doctor_id: int):
    """The day view's cell of one slot (clinic-local 'YYYY-MM-DD HH:MM') and doctor."""
    stamp = when.replace(" ", "T")
    found = [
        td
        for td in driver.find_elements(By.CSS_SELECTOR, f'#day-body td[data-doctor-id="{doctor_id}"]')
        if (td.get_attribute("data-slot") or "").startswith(stamp)
    ]
    assert len(found) == 1, f"no single cell for {when}, doctor {doctor_id}"
    return found[0]


def booking_card(driver, booking_id: str):
    return driver.find_element(By.CSS_SELECTOR, f'.booking[data-booking-id="{booking_id}"]')


def status_on_page(driver, booking_id: str) -> str | None:
    """Read in one script, so a redraw between finding the card and reading it cannot interfere."""
    return driver.execute_script(
        "const card = document.querySelector(`.booking[data-booking-id='${arguments[0]}']`);"
        "return card ? card.dataset.status : null;",
        booking_id,
    )


def shown_ids(driver) -> set[str]:
    """Every booking id on the page, read in one script."""
    return set(
        driver.execute_script(
            "return [...document.querySelectorAll('[data-booking-id]')].map(e => e.dataset.bookingId)"
        )
    )


def press(driver, booking_id: str, label: str) -> None:
    """Click a booking's button (Cancel, Reschedule), looking it up again if it was redrawn."""

    def clicked(d) -> bool:
        booking_card(d, booking_id).find_element(By.XPATH, f".//button[text()='{label}']").click()
        return True

    wait(driver).until(clicked, f"{label} of {booking_id}")


def wait_status(driver, booking_id: str, status: str) -> None:
    wait(driver).until(lambda d: status_on_page(d, booking_id) == status, f"{booking_id} to show {status}")


def shoot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    if target := os.environ.get("DESK_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def record_latency(driver, clinic, token: str, booking_id: str, status: str) -> float:
    """Milliseconds from the status's history row (the commit) to the page showing it."""
    history = http(clinic.port, "GET", f"/booking/{booking_id}", headers=bearer(token)).json()["history"]
    committed = datetime.fromisoformat(next(e["at"] for e in history if e["status"] == status)).timestamp() * 1000
    shown = driver.execute_script(
        "return window.deskChanges.filter(c => c.booking_id === arguments[0] && c.status === arguments[1])"
        ".map(c => c.at)[0]",
        booking_id,
        status,
    )
    LATENCIES.append(shown - committed)
    return shown - committed


def book_through_the_page(driver, when: str, doctor_id: int, patient: str) -> str:
    before = shown_ids(driver)
    wait(driver).until(lambda d: cell(d, when, doctor_id).find_element(By.CSS_SELECTOR, "button.free").click() or True)
    name = wait(driver).until(ec.visibility_of_element_located((By.ID, "patient")))
    name.send_keys(patient, Keys.ENTER)
    wait(driver).until(ec.invisibility_of_element_located((By.ID, "book-dialog")))
    found = wait(driver).until(lambda d: shown_ids(d) - before)
    [booking_id] = found
    return booking_id


def test_a_wrong_key_is_told_and_a_staff_key_books_a_free_cell_that_turns_confirmed_then_cancels_it(
    desk, browser, tmp_path
):
    when = slot(10, 0, weekday=1, weeks_ahead=2)
    browser.get(f"http://127.0.0.1:{desk.port}/desk?date={day_of(when)}")
    browser.find_element(By.NAME, "api-key").send_keys("ck_000000000000_" + "A" * 43, Keys.ENTER)
    error = wait(browser).until(lambda d: d.find_element(By.ID, "sign-in-error").text)
    assert error.startswith("That key is not valid")
    assert browser.execute_script("return sessionStorage.length") == 0

    staff = desk.tokens["front desk"]
    open_desk(browser, desk, staff, day_of(when))
    assert browser.execute_script("return sessionStorage.getItem('clinic.desk.key')") == staff
    assert browser.execute_script("return localStorage.length") == 0
    booking_id = book_through_the_page(browser, when, 2, "Ana Pérez")
    wait_status(browser, booking_id, "confirmed")
    record_latency(browser, desk, staff, booking_id, "confirmed")
    assert browser.execute_script("return window.deskLive.mode") == "stream"  # /events, not polling
    assert browser.find_element(By.ID, "live").text == "Live"
    text = wait(browser).until(lambda d: booking_card(d, booking_id).text)
    assert "Ana Pérez" in text and "Confirmed" in text
    shoot(browser, tmp_path, "desk-day-view")

    press(browser, booking_id, "Cancel")
    reason = wait(browser).until(ec.visibility_of_element_located((By.ID, "cancel-reason")))
    reason.send_keys("called to cancel", Keys.ENTER)
    wait_status(browser, booking_id, "cancelled")
    answer = http(desk.port, "GET", f"/booking/{booking_id}", headers=bearer(staff)).json()
    assert answer["status"] == "cancelled" and answer["reason"] == "called to cancel"
    assert [(e["status"], e["by"]) for e in answer["history"]] == [
        ("pending", "front desk"),
        ("confirmed", None),
        ("cancelled", "front desk"),
    ]
    # The slot is free again: its cell offers booking once more.
    assert cell(browser, when, 2).find_elements(By.CSS_SELECTOR, "button.free")


def test_a_confirmation_the_stream_brings_before_the_booking_answer_is_not_undone_by_it(desk, browser):
    """On a busy machine or a slow network the stream can beat POST /book's own answer to the page:
    that answer says pending, but what the stream said is newer and must stay on screen."""
    when = slot(15, 0, weekday=3, weeks_ahead=3)
    staff = desk.tokens["front desk"]
    open_desk(browser, desk, staff, day_of(when))
    # Hold the page's POST /book answer back until the stream has shown the booking's final status.
    browser.execute_script(
        """
        const real = window.fetch;
        window.fetch = async (url, options) => {
          const answer = await real(url, options);
          if (options && options.method === "POST" && String(url).endsWith("/book") && answer.ok) {
            const { booking_id } = await answer.clone().json();
            const final = () => window.deskChanges.some((c) => c.booking_id === booking_id && c.status !== "pending");
            while (!final()) await new Promise((resolve) => setTimeout(resolve, 20));
          }
          return answer;
        };
        """
    )
    booking_id = book_through_the_page(browser, when, 1, "Marta Vidal")  # returns once the answer is in
    assert status_on_page(browser, booking_id) == "confirmed"
    assert http(desk.port, "GET", f"/booking/{booking_id}", headers=bearer(staff)).json()["status"] == "confirmed"


def test_reschedule_offers_free_slots_and_the_move_is_confirmed_live(desk, browser):
    staff = desk.tokens["front desk"]
    when, to = slot(9, 0, weekday=2, weeks_ahead=2), slot(15, 30, weekday=2, weeks_ahead=2)
    made = http(desk.port, "POST", "/book", {"patient": "Luis Gómez", "slot": when, "doctor_id": 1}, bearer(staff))
    original = made.json()["booking_id"]
    open_desk(browser, desk, staff, day_of(when))
    wait_status(browser, original, "confirmed")

    press(browser, original, "Reschedule")
    choice = wait(browser).until(ec.visibility_of_element_located((By.ID, "move-slot")))
    wait(browser).until(lambda d: len(Select(choice).options) > 0)
    options = {json.loads(o.get_attribute("value"))["slot"][:16]: o for o in Select(choice).options}
    target = [
        o
        for o in Select(choice).options
        if json.loads(o.get_attribute("value")) == {"slot": to.replace(" ", "T") + ":00+00:00", "doctor_id": 3}
    ]
    assert target, f"{to} with doctor 3 is not offered among {len(options)} free slots"
    Select(choice).select_by_value(target[0].get_attribute("value"))
    browser.find_element(By.CSS_SELECTOR, "#move-form button[value='move']").click()
    wait(browser).until(ec.invisibility_of_element_located((By.ID, "move-dialog")))

    wait_status(browser, original, "cancelled")  # replaced once the new one is confirmed
    # Streams end every 4 s here: the page reconnected meanwhile, and nothing it missed was lost.
    wait(browser).until(lambda d: d.execute_script("return window.deskLive.reconnects") >= 1, "a reconnect")
    assert browser.execute_script("return window.deskLive.mode") == "stream"
    new_id = wait(browser).until(
        lambda d: cell(d, to, 3).find_element(By.CSS_SELECTOR, ".booking").get_attribute("data-booking-id")
    )
    wait_status(browser, new_id, "confirmed")
    record_latency(browser, desk, staff, new_id, "confirmed")
    answer = http(desk.port, "GET", f"/booking/{original}", headers=bearer(staff)).json()
    assert (answer["status"], answer["rescheduled_to"]) == ("cancelled", new_id)


def test_a_booking_made_while_the_stream_was_down_reaches_the_page_after_it_reconnects(desk, browser):
    staff = desk.tokens["front desk"]
    when = slot(16, 30, weekday=4, weeks_ahead=3)
    open_desk(browser, desk, staff, day_of(when))
    wait(browser).until(lambda d: d.find_element(By.ID, "live").text == "Live", "the stream")
    first = http(desk.port, "POST", "/book", {"patient": "Before Gap", "slot": when, "doctor_id": 2}, bearer(staff))
    wait_status(browser, first.json()["booking_id"], "confirmed")  # from the stream: the page has an event id
    assert browser.execute_script("return window.deskLive.lastEventId")
    # The server ends the stream after 4 s; the page waits 1 s before it reconnects with Last-Event-ID.
    wait(browser).until(lambda d: d.find_element(By.ID, "live").text == "Reconnecting…", "a dropped stream")
    made = http(desk.port, "POST", "/book", {"patient": "Gap Patient", "slot": when, "doctor_id": 3}, bearer(staff))
    away = browser.find_element(By.ID, "live").text == "Reconnecting…"  # still away when the booking was stored
    booking_id = made.json()["booking_id"]
    wait_status(browser, booking_id, "confirmed")
    # Replayed from Last-Event-ID (a page that has an event id does not read the day again), not polled.
    assert browser.execute_script("return window.deskLive.mode") == "stream"
    print(f"\nbooked while the page's stream was down: {away}")


def test_a_client_key_sees_only_its_own_bookings_and_no_admin_panel(desk, browser):
    when = slot(11, 0, weekday=3, weeks_ahead=2)
    mine = http(
        desk.port, "POST", "/book", {"patient": "Alice A", "slot": when, "doctor_id": 1}, bearer(desk.tokens["alice"])
    )
    theirs = http(
        desk.port, "POST", "/book", {"patient": "Bob B", "slot": when, "doctor_id": 2}, bearer(desk.tokens["bob"])
    )
    open_desk(browser, desk, desk.tokens["alice"], day_of(when))
    wait_status(browser, mine.json()["booking_id"], "confirmed")
    assert shown_ids(browser) == {mine.json()["booking_id"]}
    assert "Bob B" not in browser.page_source
    assert theirs.json()["booking_id"] not in browser.page_source
    assert not browser.find_element(By.ID, "admin").is_displayed()
    # Bob's confirmed slot looks free to Alice (she may not know who holds it); the API then refuses it.
    assert cell(browser, when, 2).find_elements(By.CSS_SELECTOR, "button.free")


def test_a_failed_action_shows_the_apis_detail(desk, browser):
    staff = desk.tokens["front desk"]
    when = slot(12, 0, weekday=4, weeks_ahead=2)
    open_desk(browser, desk, staff, day_of(when))
    wait(browser).until(lambda d: cell(d, when, 1).find_element(By.CSS_SELECTOR, "button.free").click() or True)
    name = wait(browser).until(ec.visibility_of_element_located((By.ID, "patient")))
    name.send_keys("Ana \u202eevil", Keys.ENTER)  # a bidi override: the API refuses the name
    error = wait(browser).until(lambda d: d.find_element(By.ID, "book-error").text)
    assert error == "patient must not contain the character U+202E"
    assert "Traceback" not in browser.page_source


def test_the_keyboard_alone_signs_in_and_books(desk, browser):
    when = slot(8, 0, weekday=0, weeks_ahead=3)
    browser.get(f"http://127.0.0.1:{desk.port}/desk?date={day_of(when)}")
    active = browser.switch_to.active_element
    assert active.get_attribute("name") == "api-key"  # focused on arrival
    active.send_keys(desk.tokens["front desk"], Keys.ENTER)
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#day-body button.free"))
    target = cell(browser, when, 1).find_element(By.CSS_SELECTOR, "button.free")
    assert target.get_attribute("aria-label").endswith("at 08:00")
    # Tab through the page until the first free cell (08:00, the first doctor) has the focus.
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(30):
        if browser.switch_to.active_element == target:
            break
        body.send_keys(Keys.TAB)
        body = browser.switch_to.active_element
    assert browser.switch_to.active_element == target
    target.send_keys(Keys.ENTER)
    name = wait(browser).until(ec.visibility_of_element_located((By.ID, "patient")))
    assert browser.switch_to.active_element == name
    name.send_keys("Marta Vidal", Keys.ENTER)
    wait(browser).until(lambda d: cell(d, when, 1).find_elements(By.CSS_SELECTOR, '.booking[data-status="confirmed"]'))


def test_the_day_reads_on_a_phone(desk, tmp_path):
    when = slot(10, 0, weekday=1, weeks_ahead=3)
    with chromium(390, 844) as phone:
        open_desk(phone, desk, desk.tokens["front desk"], day_of(when))
        width = phone.execute_script("return document.documentElement.scrollWidth")
        assert width <= phone.execute_script("return window.innerWidth")  # only the grid scrolls sideways
        assert phone.find_element(By.ID, "day").is_displayed()
        assert phone.find_element(By.ID, "next-day").is_displayed()
        shoot(phone, tmp_path, "desk-phone")


def test_an_admin_replays_a_dead_letter_and_the_booking_is_confirmed_on_the_page(desk, browser, rabbitmq, tmp_path):
    when = slot(14, 0, weekday=2, weeks_ahead=3)
    namespace = desk.env["CLINIC_NAMESPACE"]
    booking_id = _stored_but_never_sent(desk, when)
    _dead_letter(rabbitmq, namespace, booking_id)

    open_desk(browser, desk, desk.tokens["ops"], day_of(when))
    wait(browser).until(ec.visibility_of_element_located((By.ID, "admin")))
    letter = f'#dead-letters tr[data-booking-id="{booking_id}"]'
    text = wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, letter).text)
    assert "clinic.errors.DoctorUnavailable" in text and f"{namespace}.process.XQ" in text
    assert "pending" == status_on_page(browser, booking_id)
    browser.execute_script("document.getElementById('admin').scrollIntoView()")
    shoot(browser, tmp_path, "desk-dead-letters")

    replay = lambda d: d.find_element(By.CSS_SELECTOR, letter).find_element(By.XPATH, ".//button[text()='Replay']")
    wait(browser).until(lambda d: replay(d).click() or True)
    wait_status(browser, booking_id, "confirmed")
    record_latency(browser, desk, desk.tokens["ops"], booking_id, "confirmed")
    wait(browser).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, f'#dead-letters tr[data-booking-id="{booking_id}"]')
    )
    assert "Replayed 1 message(s)" in browser.find_element(By.ID, "message").text


def _stored_but_never_sent(clinic, when: str) -> str:
    """A pending booking written straight to the clinic's database, as if its message had died."""
    store.connect(clinic.env["CLINIC_DATABASE_URL"])
    try:
        with store.database.connection_context():
            booking = bookings.request_booking(
                Settings.from_env(clinic.env), {"patient": "Dead Letter", "slot": when, "doctor_id": 2}
            )
    finally:
        store.close_session()
    return booking.id


def _dead_letter(url: str, namespace: str, booking_id: str) -> None:
    """Put a process_booking message for the booking in ``{ns}.process.XQ``, as Dramatiq leaves one."""
    message = Message(
        queue_name=f"{namespace}.process.XQ",
        actor_name="process_booking",
        args=(booking_id,),
        kwargs={},
        options={"retries": 3, "error_type": "clinic.errors.DoctorUnavailable"},
    )
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", f"{namespace}.process.XQ", message.encode(), pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()
