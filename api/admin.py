"""``/admin/*``: operating the pipeline. The admin key is checked by ``api.auth`` before routing."""

from __future__ import annotations

import falcon
import msgspec

from api import bodies
from api.contract import Operation, Reply
from clinic import bookings, keys
from clinic.broker import deadletters
from clinic.broker.deadletters import DeadLetters
from clinic.broker.queues import queue_depths
from clinic.config import STAGES, Settings
from clinic.store import utcnow

#: An admin request body is a few ids; anything larger is not one.
ADMIN_BODY_BYTES = 4 * 1024
_UNAVAILABLE = Reply(503, "RabbitMQ does not answer; ask again after Retry-After seconds", headers={"Retry-After": ""})


class DeadLetterCollection:
    """``GET /admin/dead-letters[?queue=STAGE]``: what sits in the dead-letter queues, left there."""

    scope = keys.ADMIN
    operations = {
        "get": Operation(
            "listDeadLetters",
            "The dead letters, left where they are",
            description=f"Dramatiq keeps a dead letter for {deadletters.RETENTION_DAYS} days.",
            parameters=(
                {
                    "name": "queue",
                    "in": "query",
                    "required": False,
                    "description": "only this stage's dead letters (default: every stage)",
                    "schema": {"type": "string", "enum": list(STAGES)},
                },
            ),
            replies=(
                Reply(200, "What sits in every `{namespace}.{stage}.XQ`", bodies.DeadLetterList),
                Reply(422, "`queue` is not a stage; `field` names it"),
                _UNAVAILABLE,
            ),
        )
    }

    def __init__(self, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        stage = deadletters.stage_of(req.get_param("queue"))
        letters = self.dead_letters.list(stage)
        resp.media = msgspec.to_builtins(bodies.DeadLetterList(letters, len(letters), deadletters.RETENTION_DAYS))


class DeadLetterReplay:
    """``POST /admin/dead-letters/replay``: ``{"message_id": ID}`` or ``{"all": true}``, optionally
    with ``"queue"``; the messages go back to their queue with their retry count reset."""

    scope = keys.ADMIN
    operations = {
        "post": Operation(
            "replayDeadLetters",
            "Send dead letters back to their queue, retry count reset",
            body=bodies.ReplayBody,
            max_body=ADMIN_BODY_BYTES,
            replies=(
                Reply(200, "The dead letters sent back", bodies.Replayed),
                Reply(404, "No dead letter has that message id"),
                Reply(422, "A field is wrong, or neither or both of message_id and all: true are given"),
                _UNAVAILABLE,
            ),
        )
    }

    def __init__(self, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        stage, message_id = deadletters.replay_request(req.get_media())
        replayed = self.dead_letters.replay(stage=stage, message_id=message_id)
        resp.media = msgspec.to_builtins(bodies.Replayed(replayed, len(replayed)))


class PipelineState:
    """``GET /admin/pipeline``: each stage's queue depths and the oldest pending booking, read now."""

    scope = keys.ADMIN
    operations = {
        "get": Operation(
            "pipelineState",
            "The pipeline at a glance",
            replies=(
                Reply(200, "Queue depths per stage, and the booking pending longest", bodies.PipelineState),
                _UNAVAILABLE,
            ),
        )
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        queues = [bodies.QueueDepth(**depth.as_dict()) for depth in queue_depths(self.settings, timeout=2)]
        oldest = bookings.oldest_pending()
        waiting = None
        if oldest is not None:
            age = (utcnow() - oldest.created_at).total_seconds()
            waiting = bodies.OldestPending(oldest.id, oldest.created_at.isoformat(), round(age, 3))
        resp.cache_control = ["no-store"]
        resp.media = msgspec.to_builtins(bodies.PipelineState(queues, waiting))
