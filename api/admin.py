"""``/admin/*``: operating the pipeline. The admin key is checked by ``api.auth`` before routing."""

from __future__ import annotations

import falcon

from api.resources import max_body
from clinic.broker import deadletters
from clinic.broker.deadletters import DeadLetters

#: An admin request body is a few ids; anything larger is not one.
ADMIN_BODY_BYTES = 4 * 1024


class DeadLetterCollection:
    """``GET /admin/dead-letters[?queue=STAGE]``: what sits in the dead-letter queues, left there."""

    def __init__(self, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        stage = deadletters.stage_of(req.get_param("queue"))
        letters = self.dead_letters.list(stage)
        resp.media = {
            "dead_letters": [letter.as_dict() for letter in letters],
            "count": len(letters),
            "retention_days": deadletters.RETENTION_DAYS,
        }


class DeadLetterReplay:
    """``POST /admin/dead-letters/replay``: ``{"message_id": ID}`` or ``{"all": true}``, optionally
    with ``"queue"``; the messages go back to their queue with their retry count reset."""

    def __init__(self, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters

    @falcon.before(max_body(ADMIN_BODY_BYTES))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        stage, message_id = deadletters.replay_request(req.get_media())
        replayed = self.dead_letters.replay(stage=stage, message_id=message_id)
        resp.media = {"replayed": [letter.as_dict() for letter in replayed], "count": len(replayed)}
