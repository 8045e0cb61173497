"""``/webhooks``: a key registers endpoints that receive booking events, signed the Standard
Webhooks way; each key sees only its own endpoints (another key's is 404). A client key's endpoint
hears of that client's bookings, an admin key's of every booking (``api.auth.owner``)."""

from __future__ import annotations

from collections.abc import Callable

import falcon
import msgspec

from api import bodies
from api.auth import owner
from api.contract import Operation, Reply
from api.resources import Sender, query
from clinic import keys, lifecycle, webhooks
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.lifecycle import Step
from clinic.secretbox import SecretBox
from clinic.store import WebhookDelivery, WebhookEndpoint

_WEBHOOK_ID = {"name": "webhook_id", "in": "path", "required": True, "schema": {"type": "string"}}
_DELIVERY_ID = {"name": "delivery_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NOT_FOUND = Reply(404, "No endpoint has that id, or it is another key's")


def registrant(req: falcon.Request) -> str:
    """The key that owns the endpoints of this request ('' for an anonymous caller in open mode)."""
    principal = req.context.principal
    return principal.key_id if principal is not None else ""


def webhook_json(endpoint: WebhookEndpoint, secret: str | None = None) -> dict:
    fields = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events.split(),
        "description": endpoint.description,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at.isoformat(),
        "updated_at": endpoint.updated_at.isoformat(),
    }
    body = bodies.WebhookWithSecret(**fields, secret=secret) if secret else bodies.Webhook(**fields)
    return msgspec.to_builtins(body)


def delivery_json(delivery: WebhookDelivery) -> dict:
    last = delivery.last_response
    return msgspec.to_builtins(
        bodies.Delivery(
            id=str(delivery.id),
            event_id=delivery.event_id,
            type=delivery.type,
            status=delivery.status,
            attempts=delivery.attempts,
            last_response=int(last) if last and last.isascii() and last.isdigit() else last,
            next_attempt_at=delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
        )
    )


class WebhookCollection:
    """``POST /webhooks`` registers an endpoint (its secret is shown once); ``GET`` lists the key's."""

    scope = keys.CLIENT
    admin_may_read = True
    operations = {
        "post": Operation(
            "createWebhook",
            "Register a webhook endpoint",
            body=bodies.WebhookCreate,
            replies=(
                Reply(201, "Registered; `secret` is shown only in this answer", bodies.WebhookWithSecret),
                Reply(422, "A field is wrong, or the URL is refused (`field` is url)"),
            ),
        ),
        "get": Operation("listWebhooks", "This key's webhook endpoints", replies=(Reply(200, "", bodies.WebhookList),)),
    }

    def __init__(self, settings: Settings, box: SecretBox) -> None:
        self.settings, self.box = settings, box

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        made = webhooks.register(
            self.settings,
            self.box,
            owner=registrant(req),
            all_bookings=owner(req) is None,
            url=body.url,
            events=list(body.events),
            description=body.description,
        )
        resp.status = falcon.HTTP_201
        resp.location = f"/webhooks/{made.endpoint.id}"
        resp.media = webhook_json(made.endpoint, made.secret)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"webhooks": [webhook_json(e) for e in webhooks.endpoints_of(registrant(req))]}


class WebhookItem:
    """``GET|PATCH|DELETE /webhooks/{webhook_id}``."""

    scope = keys.CLIENT
    admin_may_read = True
    operations = {
        "get": Operation(
            "getWebhook",
            "A webhook endpoint",
            parameters=(_WEBHOOK_ID,),
            replies=(Reply(200, "The endpoint", bodies.Webhook), _NOT_FOUND),
        ),
        "patch": Operation(
            "changeWebhook",
            "Change a webhook endpoint (enabling it again clears why it was disabled)",
            body=bodies.WebhookChange,
            parameters=(_WEBHOOK_ID,),
            replies=(Reply(200, "The endpoint as changed", bodies.Webhook), _NOT_FOUND),
        ),
        "delete": Operation(
            "deleteWebhook",
            "Delete a webhook endpoint and its delivery log",
            parameters=(_WEBHOOK_ID,),
            replies=(Reply(204, "Deleted"), _NOT_FOUND),
        ),
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        resp.media = webhook_json(webhooks.endpoint_of(registrant(req), webhook_id))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        changes = {k: v for k, v in msgspec.structs.asdict(req.context.body).items() if v is not msgspec.UNSET}
        endpoint = webhooks.change(self.settings, registrant(req), webhook_id, changes)
        resp.media = webhook_json(endpoint)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        webhooks.delete(registrant(req), webhook_id)
        resp.status = falcon.HTTP_204


class WebhookRotation:
    """``POST /webhooks/{webhook_id}/rotate-secret``: a new secret; the old one signs beside it for 24 h."""

    scope = keys.CLIENT
    admin_may_read = True
    operations = {
        "post": Operation(
            "rotateWebhookSecret",
            "Rotate the signing secret (both sign, space-separated, for 24 hours)",
            parameters=(_WEBHOOK_ID,),
            replies=(Reply(200, "The endpoint with its new secret, shown once", bodies.WebhookWithSecret), _NOT_FOUND),
        )
    }

    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def on_post(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        made = webhooks.rotate(self.box, registrant(req), webhook_id)
        resp.media = webhook_json(made.endpoint, made.secret)


class DeliveryLog:
    """``GET /webhooks/{webhook_id}/deliveries?status=&limit=&cursor=``: newest first."""

    scope = keys.CLIENT
    admin_may_read = True
    operations = {
        "get": Operation(
            "listWebhookDeliveries",
            "The endpoint's delivery log, newest first",
            parameters=(
                _WEBHOOK_ID,
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(webhooks.DELIVERY_STATUSES)},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                },
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            ),
            replies=(
                Reply(200, "A page of deliveries", bodies.DeliveryList),
                Reply(422, "A bad status, limit or cursor; `field` names it"),
                _NOT_FOUND,
            ),
        )
    }

    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        params = query(req)
        limit = params.get("limit", "50")
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= 200:
            raise InvalidField("limit", "must be a whole number from 1 to 200")
        rows, following = webhooks.deliveries(
            registrant(req), webhook_id, status=params.get("status"), limit=int(limit), cursor=params.get("cursor")
        )
        resp.media = {"deliveries": [delivery_json(row) for row in rows], "next_cursor": following}


class DeliveryReplay:
    """``POST /webhooks/{webhook_id}/deliveries/{delivery_id}/replay``: send it again, same ``webhook-id``."""

    scope = keys.CLIENT
    admin_may_read = True
    operations = {
        "post": Operation(
            "replayWebhookDelivery",
            "Send a delivery again, with the same webhook-id",
            parameters=(_WEBHOOK_ID, _DELIVERY_ID),
            replies=(Reply(202, "Pending again; the webhooks worker sends it", bodies.Delivery), _NOT_FOUND),
        )
    }

    def __init__(self, dispatch: Callable[[Step], object]) -> None:
        self.send = Sender(dispatch)

    def on_post(self, req: falcon.Request, resp: falcon.Response, webhook_id: str, delivery_id: str) -> None:
        delivery = webhooks.replay(registrant(req), webhook_id, delivery_id)
        self.send(lifecycle.deliver(delivery.id))
        resp.status = falcon.HTTP_202
        resp.media = delivery_json(delivery)
