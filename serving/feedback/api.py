"""The service's feedback endpoints, between HTTP and `serving.feedback.campaigns.Campaigns`.

    curl -H 'Authorization: Bearer $KEY' -d '{"text": "...", "label": "fraud.other", "source": "analyst"}' \
         localhost:3000/feedback
    curl -X DELETE -H 'Authorization: Bearer $KEY' localhost:3000/feedback/17

| env | default | meaning |
| --- | --- | --- |
| FANZHA_FEEDBACK_DB | unset | SQLite file or postgresql:// URL; unset: no campaigns, `/feedback` answers 503 |
| FANZHA_FEEDBACK_SYNC_S | 0.25 | how often each worker reads the store's new reports and undos |
| FANZHA_MAX_FEEDBACK_CHARS | 4096 | characters of a reported text (more: 422) |

Answers: 200 with the feedback id and its campaign (`campaign_state`: label, weight, action);
422 with the reason for a bad report (unknown label or source, empty or over-long text, a
label its source cannot give); 404 for an unknown id; 503 while the database is down or when
none is configured. Auth, body size and content type are the gate's (serving/security.py).
"""
from __future__ import annotations

from typing import Literal, Optional

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from data import settings
from serving.feedback.campaigns import Campaigns, FeedbackError
from serving.feedback.store import StoreError, describe, open_store

MAX_FEEDBACK_CHARS = settings.get_int("FANZHA_MAX_FEEDBACK_CHARS")


class FeedbackIn(BaseModel):
    """One report on one message."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    text: str = Field(..., min_length=1, max_length=MAX_FEEDBACK_CHARS, description="the message as received")
    label: str = Field(..., max_length=64, description="normal | spam | fraud | fraud.<type> (a class of the served model)")
    source: Literal["analyst", "user_report", "appeal"] = Field(
        ..., description="analyst: takes effect at once; user_report: adds weight; appeal: contests a block")
    sender: Optional[str] = Field(None, max_length=64, description="the message's sender id (weights count distinct senders)")
    message_id: Optional[str] = Field(None, max_length=128, description="the operator's id of the message")
    note: Optional[str] = Field(None, max_length=1000, description="free text for the analyst")


async def validation_error(request, exc) -> JSONResponse:
    """A body that does not match its schema: 422 with one line per problem, no input echoed."""
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    where = "; ".join(f"{'.'.join(map(str, d['loc'][1:] or d['loc']))}: {d['msg']}" for d in detail[:5])
    return JSONResponse({"error": f"invalid request: {where}", "detail": detail}, status_code=422)


def _json(description: str, schema: dict | None = None) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"$ref": "#/components/schemas/Error"}}}}


_STATE = {"type": ["object", "null"], "description": "the campaign: id, label, weight, min_weight, action, reports, ..."}


class FeedbackRoutes:
    POST_RESPONSES = {
        200: _json("stored; the campaign it joined or founded",
                   {"type": "object", "required": ["id", "campaign", "joined", "campaign_state"],
                    "properties": {"id": {"type": "integer"}, "campaign": {"type": "string"},
                                   "joined": {"type": "boolean"}, "similarity": {"type": ["number", "null"]},
                                   "campaign_state": _STATE}}),
        422: _json("the report cannot be taken (unknown label or source, empty or over-long text, ...)"),
        503: _json("the feedback database is down or not configured; /classify keeps answering"),
    }
    DELETE_RESPONSES = {
        200: _json("undone (`deleted` false: it was undone before)",
                   {"type": "object", "required": ["id", "deleted", "campaign"],
                    "properties": {"id": {"type": "integer"}, "deleted": {"type": "boolean"},
                                   "campaign": {"type": "string"}, "campaign_state": _STATE}}),
        404: _json("no report with this id"),
        503: POST_RESPONSES[503],
    }
    GET_RESPONSES = {200: _json("a list", {"type": "array", "items": {"type": "object"}}),
                     503: POST_RESPONSES[503]}

    def __init__(self, campaigns: Campaigns | None):
        self.campaigns = campaigns

    @classmethod
    def from_env(cls, rules, metrics=None) -> "FeedbackRoutes":
        target = settings.get("FANZHA_FEEDBACK_DB")
        if not target:
            return cls(None)
        campaigns = Campaigns(open_store(target), rules, metrics,
                              sync_every=settings.get_float("FANZHA_FEEDBACK_SYNC_S"))
        return cls(campaigns.start())

    def serve_labels(self, labels) -> None:
        """The classes a report may name: those of the models served (and the bare categories)."""
        if self.campaigns is not None:
            self.campaigns.labels = self.campaigns.labels | set(labels)

    @staticmethod
    def _unavailable(reason: str) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=503)

    def post(self, body: FeedbackIn, predictor) -> dict | JSONResponse:
        if self.campaigns is None:
            return self._unavailable("feedback is off: start the service with FANZHA_FEEDBACK_DB set")
        try:
            return self.campaigns.submit(predictor.campaigns, body.text, body.label, body.source, body.sender,
                                         body.message_id, body.note)
        except FeedbackError as e:
            return JSONResponse({"error": str(e)}, status_code=422)
        except StoreError as e:
            return self._unavailable(str(e))

    def delete(self, feedback_id: int) -> dict | JSONResponse:
        if self.campaigns is None:
            return self._unavailable("feedback is off: start the service with FANZHA_FEEDBACK_DB set")
        try:
            done = self.campaigns.undo(feedback_id)
        except StoreError as e:
            return self._unavailable(str(e))
        if done is None:
            return JSONResponse({"error": f"no feedback with id {feedback_id}"}, status_code=404)
        return done

    def listing(self):
        if self.campaigns is None:
            return self._unavailable("feedback is off: start the service with FANZHA_FEEDBACK_DB set")
        return self.campaigns.listing()

    def queue(self):
        if self.campaigns is None:
            return self._unavailable("feedback is off: start the service with FANZHA_FEEDBACK_DB set")
        return self.campaigns.queue()

    def info(self) -> dict | None:
        if self.campaigns is None:
            return None
        return {**describe(self.campaigns.store), **self.campaigns.info()}

    def close(self) -> None:
        if self.campaigns is not None:
            self.campaigns.stop()
            self.campaigns.store.close()
