"""The HTTP contract of `POST /classify`: request items, result, per-request limits.

    python -m serving.api_models      # prints the JSON schema of an item and of a result

These pydantic models are what BentoML validates requests against and what its OpenAPI
document (`GET /docs.json`) describes. Limits are env vars, read once at import:

| env | default | meaning |
| --- | --- | --- |
| FANZHA_MAX_TEXTS | 256 | items per request (more: 400) |
| FANZHA_MAX_SENDER_CHARS | 64 | characters of a sender id (more: 400) |
| FANZHA_MAX_EXPLAIN_CHARS | 20000 | characters of a text sent to `POST /explain` (more: 400) |

Texts have no character limit of their own: an over-long text keeps its head and tail
(data/encoding.py); the request body limit (FANZHA_MAX_BODY_BYTES, serving/security.py) bounds
what one request can cost.
"""
from __future__ import annotations

import json
from typing import Annotated, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, RootModel, Tag, WithJsonSchema

from data import settings

MAX_TEXTS = settings.get_int("FANZHA_MAX_TEXTS")
MAX_SENDER_CHARS = settings.get_int("FANZHA_MAX_SENDER_CHARS")
MAX_EXPLAIN_CHARS = settings.get_int("FANZHA_MAX_EXPLAIN_CHARS")


def _number_to_str(value):
    """A short code sent as a JSON number (95588) is the string "95588"."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Message(BaseModel):
    """A message with metadata. `sender` is matched against the policy's allow-list."""

    # hide_input_in_errors: a validation error must never echo (or log) message text
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    text: str = Field(..., description="the message text")
    # the schema says what is accepted: a short code may come as a JSON number (read as its digits)
    sender: Annotated[Optional[str], BeforeValidator(_number_to_str),
                      WithJsonSchema({"anyOf": [{"type": "string", "maxLength": MAX_SENDER_CHARS},
                                                {"type": "integer"}, {"type": "null"}]})] = Field(
        None, max_length=MAX_SENDER_CHARS, description="sender id, e.g. a bank short code such as 95588")


def _item_kind(value) -> str | None:
    if isinstance(value, str):
        return "text"
    return "message" if isinstance(value, (dict, Message)) else None


# A RootModel, because BentoML rewrites the annotations of an API's parameters and would drop
# the union's tags; the discriminator gives a bad item one clear error, not one per branch.
class Item(RootModel):
    """A message: a bare string, or an object with the text and its metadata."""

    model_config = ConfigDict(hide_input_in_errors=True)
    root: Annotated[
        Union[Annotated[str, Tag("text")], Annotated[Message, Tag("message")]],
        Discriminator(_item_kind, custom_error_type="invalid_item",
                      custom_error_message='each item must be a string or an object {"text": string, "sender": string}'),
    ]


class Result(BaseModel):
    """One result per input item, in order."""

    label: Optional[str] = Field(None, description="most probable class inside the most probable category")
    category: Optional[str] = Field(None, description="normal | spam | fraud")
    score: Optional[float] = Field(None, description="probability of `label`")
    fraud_score: Optional[float] = Field(None, description="probability of the fraud category")
    spam_score: Optional[float] = Field(None, description="probability of the spam category")
    action: Optional[str] = Field(None, description="allow | flag | block (null when `error` is set)")
    reason: str = Field("", description="the policy rule that decided `action`: threshold:<category>.<action>, "
                                        "threshold:none, allowlist:sender, blocklist:domain:<d>, blocklist:phone:<n>")
    error: str = Field("", description="empty unless this item could not be scored (e.g. an empty text)")
    scores: Optional[dict[str, float]] = Field(None, description="probability of every class")


class Explanation(BaseModel):
    """`POST /explain`: the /classify result of the text and one weight per character."""

    result: Result = Field(..., description="exactly what /classify answers for this text")
    weights: list[float] = Field(..., description="per character of the text: how much it pushed the fraud score "
                                                  "(fraud score of the text minus that of the text without it)")
    copies: int = Field(..., description="occluded copies scored (one ONNX Runtime call, at most 256)")
    span: int = Field(..., description="characters removed per copy (1 up to 256 characters, more for longer texts)")


def split_items(items: list) -> tuple[list, list[Optional[str]]]:
    """Items (Item | str | Message | dict) -> (texts, senders)."""
    texts, senders = [], []
    for item in items:
        if isinstance(item, Item):
            item = item.root
        if isinstance(item, Message):
            texts.append(item.text)
            senders.append(item.sender)
        elif isinstance(item, dict):
            texts.append(item.get("text"))
            sender = item.get("sender")
            senders.append(None if sender is None else str(sender))
        else:
            texts.append(item)
            senders.append(None)
    return texts, senders


def main(argv=None) -> int:
    print(json.dumps({"Message": Message.model_json_schema(), "Result": Result.model_json_schema()},
                     indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
