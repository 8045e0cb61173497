// The front desk: plain modern JavaScript, no framework, no build step. Everything it shows comes
// from the API with the key typed into it (kept in sessionStorage only, sent as a bearer header).
"use strict";

const KEY_STORAGE = "clinic.desk.key";
const POLL_MS = 1000; // when /events is not served: how often the day is read again
const RECONNECT_MS = 1000; // after a dropped event stream
const ADMIN_REFRESH_MS = 5000;
const EVENT_TYPES = ["booking.pending", "booking.confirmed", "booking.rejected", "booking.cancelled"];
const HOLDING = new Set(["pending", "confirmed"]);
const LABELS = { pending: "Pending", confirmed: "Confirmed", rejected: "Rejected", cancelled: "Cancelled" };

const $ = (id) => document.getElementById(id);

const state = {
  key: null,
  me: null,
  doctors: [],
  day: null, // "YYYY-MM-DD"
  slots: [], // [{start, end}] of the day
  bookings: new Map(), // booking_id -> booking, for the day shown
  rendered: new Map(), // cell id -> signature of what it shows
  stream: null, // AbortController of the live stream
  lastEventId: null,
  poller: null,
  adminTimer: null,
  lettersShown: null, // what the dead-letters table shows, to redraw it only when it changes
};
// How the page keeps up: "stream" (GET /events) or "polling" (no event stream on this server), and
// how often the stream was opened again after a drop. Read by the browser tests, shown by the badge.
window.deskLive = { mode: "connecting", reconnects: 0 };
// Each time a booking's status changes on screen: what and when (ms since the epoch). Read by the
// browser tests to measure how long a change takes to reach the page.
window.deskChanges = [];

class Problem extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// One request to the API: JSON in and out; any failure becomes a Problem whose message is the
// API's `detail` (never a stack trace).
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new Problem(0, "The clinic's server did not answer. Check the connection and try again.");
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const detail = payload && typeof payload.detail === "string" ? payload.detail : `the server answered ${response.status}`;
    throw new Problem(response.status, detail);
  }
  return payload;
}

function say(text, { info = false } = {}) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("info", info);
  box.hidden = !text;
}

function failed(error) {
  say(error instanceof Problem ? error.message : "Something went wrong; try again.");
}

// ---- sign-in ---------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  try {
    state.me = await api("GET", "/me");
  } catch (error) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    const why = error.status === 401 ? `That key is not valid: ${error.message}.` : error.message;
    $("sign-in-error").textContent = why;
    $("api-key").focus();
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("sign-in-error").textContent = "";
  $("api-key").value = "";
  $("sign-in").hidden = true;
  $("desk").hidden = false;
  $("who").hidden = false;
  $("sign-out").hidden = false;
  const sees = state.me.scope === "client" ? "its own bookings" : "every booking";
  $("who").textContent = `${state.me.name} (${state.me.scope} key: ${sees})`;
  document.body.dataset.scope = state.me.scope;
  try {
    state.doctors = (await api("GET", "/doctors")).doctors;
  } catch (error) {
    failed(error);
  }
  const asked = new URLSearchParams(location.search).get("date");
  await openDay(asked && /^\d{4}-\d{2}-\d{2}$/.test(asked) ? asked : null);
  follow();
  if (state.me.scope === "admin") {
    $("admin").hidden = false;
    refreshAdmin();
    state.adminTimer = setInterval(refreshAdmin, ADMIN_REFRESH_MS);
  }
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  location.reload();
}

// ---- the day ---------------------------------------------------------------------------------

function shiftDay(day, days) {
  const [y, m, d] = day.split("-").map(Number);
  const moved = new Date(Date.UTC(y, m - 1, d + days));
  return moved.toISOString().slice(0, 10);
}

async function openDay(day) {
  say("");
  let calendar;
  try {
    calendar = await api("GET", day ? `/calendar?date=${day}` : "/calendar");
  } catch (error) {
    failed(error);
    return;
  }
  state.day = calendar.date;
  state.slots = calendar.slots;
  state.bookings = new Map();
  state.rendered = new Map();
  $("day").value = state.day;
  const url = new URL(location.href);
  url.searchParams.set("date", state.day);
  history.replaceState(null, "", url);
  buildGrid(calendar);
  await reloadBookings();
}

async function reloadBookings() {
  const day = state.day;
  const found = new Map();
  let cursor = null;
  try {
    do {
      const params = new URLSearchParams({ from: day, to: day, limit: "200" });
      if (cursor) params.set("cursor", cursor);
      const page = await api("GET", `/bookings?${params}`);
      for (const booking of page.bookings) found.set(booking.booking_id, booking);
      cursor = page.next_cursor;
    } while (cursor);
  } catch (error) {
    failed(error);
    return;
  }
  if (day !== state.day) return; // another day was opened meanwhile
  for (const booking of found.values()) remember(booking);
  render();
}

// Keep the newer of two copies of a booking (a stream event and a listing may cross).
function remember(booking) {
  const known = state.bookings.get(booking.booking_id);
  if (known && known.updated_at && booking.updated_at && known.updated_at > booking.updated_at) return;
  if (!known || known.status !== booking.status) {
    window.deskChanges.push({ booking_id: booking.booking_id, status: booking.status, at: Date.now() });
  }
  state.bookings.set(booking.booking_id, booking);
}

function onDay(booking) {
  return typeof booking.slot === "string" && booking.slot.slice(0, 10) === state.day;
}

function hhmm(iso) {
  return iso.slice(11, 16); // the clinic's wall time, as the API writes it (with its offset)
}

function columns() {
  const cols = state.doctors.map((doctor) => ({ id: String(doctor.id), name: doctor.name }));
  const unassigned = [...state.bookings.values()].some((b) => b.doctor_id === null && onDay(b));
  if (unassigned) cols.push({ id: "any", name: "Any doctor (not yet assigned)" });
  return cols;
}

function buildGrid(calendar) {
  const head = $("day-head");
  head.replaceChildren(th("col", "Time"));
  for (const col of columns()) head.append(th("col", col.name, col.id));
  const body = $("day-body");
  body.replaceChildren();
  for (const slot of state.slots) {
    const row = document.createElement("tr");
    row.append(th("row", hhmm(slot.start)));
    body.append(row);
  }
  const weekday = new Date(`${calendar.date}T12:00:00Z`).toLocaleDateString("en-GB", {
    weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC",
  });
  $("day-caption").textContent = state.slots.length
    ? `${weekday} (${calendar.timezone})`
    : `${weekday}: the clinic is closed (${calendar.timezone})`;
}

function th(scope, text, id) {
  const cell = document.createElement("th");
  cell.scope = scope;
  cell.textContent = text;
  if (id) cell.dataset.doctorId = id;
  return cell;
}

// Draw every cell whose content changed since it was last drawn (a focused button elsewhere stays).
function render() {
  const cols = columns();
  const head = $("day-head");
  if (head.children.length !== cols.length + 1) buildGrid({ date: state.day, timezone: "" });
  const bySlot = new Map();
  for (const booking of state.bookings.values()) {
    if (!onDay(booking)) continue;
    const col = booking.doctor_id === null ? "any" : String(booking.doctor_id);
    const key = `${booking.slot}|${col}`;
    if (!bySlot.has(key)) bySlot.set(key, []);
    bySlot.get(key).push(booking);
  }
  const rows = $("day-body").children;
  state.slots.forEach((slot, index) => {
    const row = rows[index];
    cols.forEach((col, c) => {
      const here = sameInstant(bySlot, slot.start, col.id);
      here.sort((a, b) => rank(a) - rank(b) || (a.updated_at < b.updated_at ? 1 : -1));
      const past = Date.parse(slot.start) <= Date.now();
      const signature = JSON.stringify([past, here.map((b) => [b.booking_id, b.status, b.patient])]);
      const cellId = `${slot.start}|${col.id}`;
      let cell = row.children[c + 1];
      if (!cell) {
        cell = document.createElement("td");
        row.append(cell);
      }
      if (state.rendered.get(cellId) === signature && cell.dataset.cell === cellId) return;
      state.rendered.set(cellId, signature);
      cell.dataset.cell = cellId;
      cell.dataset.slot = slot.start;
      cell.dataset.doctorId = col.id;
      cell.classList.toggle("past", past);
      fillCell(cell, slot, col, here, past);
    });
  });
}

// Bookings are keyed by their slot text; a slot written with another offset is the same instant.
function sameInstant(bySlot, start, col) {
  const exact = bySlot.get(`${start}|${col}`);
  if (exact) return [...exact];
  const at = Date.parse(start);
  const found = [];
  for (const [key, list] of bySlot) {
    const [slot, c] = key.split("|");
    if (c === col && Date.parse(slot) === at) found.push(...list);
  }
  return found;
}

function rank(booking) {
  return { confirmed: 0, pending: 1, cancelled: 2, rejected: 3 }[booking.status] ?? 4;
}

function fillCell(cell, slot, col, here, past) {
  cell.replaceChildren();
  const held = here.some((b) => HOLDING.has(b.status));
  if (!held && !past && col.id !== "any") {
    const book = document.createElement("button");
    book.type = "button";
    book.className = "free";
    book.textContent = "Free";
    book.setAttribute("aria-label", `Book ${col.name} at ${hhmm(slot.start)}`);
    book.addEventListener("click", () => askToBook(slot, col));
    cell.append(book);
  } else if (!here.length) {
    cell.textContent = "";
  }
  for (const booking of here) cell.append(bookingCard(booking, col));
}

function bookingCard(booking, col) {
  const card = document.createElement("div");
  card.className = "booking";
  card.dataset.bookingId = booking.booking_id;
  card.dataset.status = booking.status;
  card.setAttribute("role", "group");
  const when = hhmm(booking.slot);
  card.setAttribute("aria-label", `${booking.patient}, ${when}, ${col.name}: ${LABELS[booking.status]}`);
  const name = document.createElement("span");
  name.className = "patient";
  name.textContent = booking.patient;
  const status = document.createElement("span");
  status.className = "state";
  if (booking.status === "pending") {
    const spinner = document.createElement("span");
    spinner.className = "spinner";
    spinner.setAttribute("aria-hidden", "true");
    status.append(spinner);
  }
  const reason = booking.reason && booking.status !== "confirmed" ? ` (${booking.reason})` : "";
  status.append(`${LABELS[booking.status] || booking.status}${reason}`);
  card.append(name, status);
  if (HOLDING.has(booking.status)) {
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(
      action("Cancel", `Cancel the booking of ${booking.patient} at ${when}`, () => askToCancel(booking), "danger"),
      action("Reschedule", `Reschedule the booking of ${booking.patient} at ${when}`, () => askToMove(booking)),
    );
    card.append(actions);
  }
  return card;
}

function action(text, label, run, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  if (className) button.className = className;
  button.addEventListener("click", run);
  return button;
}

// ---- actions ---------------------------------------------------------------------------------

function openDialog(id, what, text) {
  $(what).textContent = text;
  $(id).querySelector(".error").textContent = "";
  $(id).showModal();
}

function askToBook(slot, col) {
  const dialog = $("book-dialog");
  dialog.dataset.slot = slot.start;
  dialog.dataset.doctorId = col.id;
  $("patient").value = "";
  openDialog("book-dialog", "book-what", `${col.name}, ${state.day} at ${hhmm(slot.start)}`);
  $("patient").focus();
}

async function book(event) {
  event.preventDefault();
  const dialog = $("book-dialog");
  const body = { patient: $("patient").value, slot: dialog.dataset.slot, doctor_id: Number(dialog.dataset.doctorId) };
  try {
    const booking = await api("POST", "/book", body);
    // The answer says pending; if the stream already brought this booking, what it said is newer.
    if (!state.bookings.has(booking.booking_id)) remember({ ...booking, reason: null, updated_at: "" });
    render();
    dialog.close();
    say(`Booked ${booking.patient} at ${hhmm(booking.slot)}: waiting for confirmation.`, { info: true });
  } catch (error) {
    $("book-error").textContent = error.message;
  }
}

function askToCancel(booking) {
  const dialog = $("cancel-dialog");
  dialog.dataset.bookingId = booking.booking_id;
  $("cancel-reason").value = "";
  openDialog("cancel-dialog", "cancel-what", `${booking.patient}, ${state.day} at ${hhmm(booking.slot)}`);
  $("cancel-reason").focus();
}

async function cancelBooking(event) {
  event.preventDefault();
  const dialog = $("cancel-dialog");
  const reason = $("cancel-reason").value.trim();
  try {
    const booking = await api("POST", `/booking/${dialog.dataset.bookingId}/cancel`, reason ? { reason } : {});
    remember(booking);
    render();
    dialog.close();
    say(`Cancelled the booking of ${booking.patient} at ${hhmm(booking.slot)}.`, { info: true });
  } catch (error) {
    $("cancel-error").textContent = error.message;
  }
}

async function askToMove(booking) {
  const dialog = $("move-dialog");
  dialog.dataset.bookingId = booking.booking_id;
  const select = $("move-slot");
  select.replaceChildren();
  openDialog("move-dialog", "move-what", `${booking.patient}, now ${state.day} at ${hhmm(booking.slot)}`);
  try {
    const found = await api("GET", `/slots?from=${state.day}&to=${shiftDay(state.day, 6)}`);
    const names = new Map(state.doctors.map((d) => [d.id, d.name]));
    for (const free of found.slots) {
      const option = document.createElement("option");
      option.value = JSON.stringify({ slot: free.start, doctor_id: free.doctor_id });
      option.textContent = `${free.start.slice(0, 10)} ${hhmm(free.start)}, ${names.get(free.doctor_id)}`;
      select.append(option);
    }
    if (!found.slots.length) $("move-error").textContent = "No free slot in the coming week.";
  } catch (error) {
    $("move-error").textContent = error.message;
  }
  select.focus();
}

async function moveBooking(event) {
  event.preventDefault();
  const dialog = $("move-dialog");
  if (!$("move-slot").value) return;
  try {
    const moved = await api("POST", `/booking/${dialog.dataset.bookingId}/reschedule`, JSON.parse($("move-slot").value));
    remember(moved);
    render();
    dialog.close();
    say(`Asked to move ${moved.patient} to ${moved.slot.slice(0, 10)} ${hhmm(moved.slot)}: waiting for confirmation.`, {
      info: true,
    });
  } catch (error) {
    $("move-error").textContent = error.message;
  }
}

// ---- live: /events (Server-Sent Events), or reading the day again each second ----------------

function live(text, on) {
  const badge = $("live");
  badge.textContent = text;
  badge.classList.toggle("on", on);
  badge.classList.toggle("off", !on);
}

// EventSource cannot send an Authorization header, so the stream is read with fetch. After a drop
// it reconnects with Last-Event-ID, and the server replays what was missed.
async function follow() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  const headers = { Accept: "text/event-stream", Authorization: `Bearer ${state.key}` };
  if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
  let response;
  try {
    response = await fetch("/events", { headers, signal: controller.signal, cache: "no-store" });
  } catch {
    if (controller.signal.aborted) return;
    live("Reconnecting…", false);
    setTimeout(follow, RECONNECT_MS);
    return;
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok || !type.startsWith("text/event-stream")) {
    // No event stream on this server: read the day again every second instead.
    startPolling();
    return;
  }
  stopPolling();
  window.deskLive.mode = "stream";
  live("Live", true);
  if (!state.lastEventId) reloadBookings(); // whatever happened before the stream opened
  try {
    await readEvents(response.body, controller.signal);
  } catch {
    // a dropped stream: reconnect below
  }
  if (controller.signal.aborted) return;
  live("Reconnecting…", false);
  window.deskLive.reconnects += 1;
  setTimeout(follow, RECONNECT_MS);
}

async function readEvents(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      handleFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

function handleFrame(frame) {
  let id = null;
  let type = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (id !== null) state.lastEventId = window.deskLive.lastEventId = id;
  if (!EVENT_TYPES.includes(type) || !data.length) return;
  let event;
  try {
    event = JSON.parse(data.join("\n"));
  } catch {
    return;
  }
  const booking = event && event.data;
  if (!booking || typeof booking.booking_id !== "string") return;
  if (onDay(booking) || state.bookings.has(booking.booking_id)) {
    remember(booking);
    render();
  }
}

function startPolling() {
  window.deskLive.mode = "polling";
  live("Updating every second", true);
  if (state.poller) return;
  state.poller = setInterval(() => {
    if (!document.hidden) reloadBookings();
  }, POLL_MS);
}

function stopPolling() {
  if (state.poller) clearInterval(state.poller);
  state.poller = null;
}

// ---- admin: the pipeline and its dead letters -------------------------------------------------

function age(iso) {
  if (!iso) return "?";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

function cells(values) {
  const row = document.createElement("tr");
  for (const value of values) {
    const cell = document.createElement("td");
    if (value instanceof Node) cell.append(value);
    else cell.textContent = value;
    row.append(cell);
  }
  return row;
}

async function refreshAdmin() {
  try {
    const pipeline = await api("GET", "/admin/pipeline");
    $("queues").tBodies[0].replaceChildren(
      ...pipeline.queues.map((q) => cells([q.queue, String(q.ready), String(q.delayed), String(q.dead)])),
    );
    const oldest = pipeline.oldest_pending;
    $("oldest-pending").textContent = oldest
      ? `Oldest pending booking: ${oldest.booking_id}, waiting ${age(oldest.created_at)}.`
      : "No booking is pending.";
    const letters = (await api("GET", "/admin/dead-letters")).dead_letters;
    // Redrawn only when what it shows changed, so a Replay button keeps the keyboard's focus.
    const signature = JSON.stringify(letters.map((l) => [l.message_id, l.queue, age(l.enqueued_at)]));
    if (signature === state.lettersShown) return;
    state.lettersShown = signature;
    $("dead-letters").tBodies[0].replaceChildren(
      ...letters.map((letter) => {
        const replay = action("Replay", `Replay the dead letter of booking ${letter.booking_id || letter.message_id}`, () =>
          replayLetter(letter),
        );
        const row = cells([letter.queue, letter.booking_id || "-", letter.error, age(letter.enqueued_at), replay]);
        row.dataset.messageId = letter.message_id;
        if (letter.booking_id) row.dataset.bookingId = letter.booking_id;
        return row;
      }),
    );
    $("no-dead-letters").hidden = letters.length > 0;
  } catch (error) {
    failed(error);
  }
}

async function replayLetter(letter) {
  try {
    const done = await api("POST", "/admin/dead-letters/replay", { message_id: letter.message_id });
    say(`Replayed ${done.count} message(s) to ${letter.queue.replace(/\.XQ$/, "")}.`, { info: true });
  } catch (error) {
    failed(error);
  }
  refreshAdmin();
}

// ---- wiring ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) signIn(key);
  });
  $("sign-out").addEventListener("click", signOut);
  $("day").addEventListener("change", () => $("day").value && openDay($("day").value));
  $("previous-day").addEventListener("click", () => openDay(shiftDay(state.day, -1)));
  $("next-day").addEventListener("click", () => openDay(shiftDay(state.day, 1)));
  $("today").addEventListener("click", () => openDay(null));
  $("refresh-admin").addEventListener("click", refreshAdmin);
  $("book-form").addEventListener("submit", book);
  $("cancel-form").addEventListener("submit", cancelBooking);
  $("move-form").addEventListener("submit", moveBooking);
  for (const close of document.querySelectorAll("dialog .close")) {
    close.addEventListener("click", () => close.closest("dialog").close());
  }
  window.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    failed(event.reason);
  });
  const kept = sessionStorage.getItem(KEY_STORAGE);
  if (kept) signIn(kept);
  else $("api-key").focus();
});
