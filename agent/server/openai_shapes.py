"""The OpenAI chat-completions shape: request models, and the response and stream chunks built
from a chat turn's events, so any OpenAI client (``openai``, curl recipes, chat UIs) talks to recsage.

Only the last user message may carry media (an ``image_url`` data URL or ``input_audio``): earlier
turns are replayed as text to rebuild the session's state, never re-transcribed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.core.config import Settings
from agent.server.io import ApiError

MODEL_ID = "recsage"
log = logging.getLogger(__name__)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    url: str = Field(description="A data: URL (base64 image); the server never fetches remote URLs.")


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(BaseModel):
    data: str = Field(description="Base64-encoded audio bytes.")
    format: str = Field("wav", pattern=r"^[A-Za-z0-9]{1,8}$", description="File type, e.g. wav, mp3, ogg.")


class AudioPart(BaseModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImagePart | AudioPart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients add name, tool_calls ...; they are ignored

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class CompletionRequest(BaseModel):
    """OpenAI's request body. Sampling parameters (temperature, max_tokens ...) are accepted and
    ignored: the agent decodes greedily with its own limits."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(MODEL_ID, max_length=200, description="Any name; the answer always comes from recsage.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    recsage_user: str | None = Field(
        None, max_length=64,
        description="A MovieLens user id to personalise for (OpenAI's own `user` field is only an abuse-"
                    "monitoring id and is ignored).",
    )


def message_text(message: ChatMessage) -> str:
    """The text of a message: its string content, or its text parts joined."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(p.text for p in message.content if isinstance(p, TextPart))


def plain_messages(messages: Iterable[ChatMessage]) -> list[dict]:
    """The ``[{"role", "content": str}]`` list ChatAgent.session_from_messages replays."""
    return [{"role": "system" if m.role == "developer" else m.role, "content": message_text(m)}
            for m in messages if m.role in ("system", "developer", "user", "assistant")]


def message_too_long(where: str, size: int, limit: int) -> ApiError:
    """413 for chat text over ``max_message_chars``, naming the message and the limit."""
    return ApiError(413, f"{where} is {size:,} characters, over the limit of {limit:,} (setting "
                         "max_message_chars); shorten it", "request_too_large")


def check_message_lengths(messages: list[ChatMessage], limit: int) -> None:
    """Refuse the transcript when any one message's text is over ``limit`` characters."""
    for index, message in enumerate(messages):
        size = len(message_text(message))
        if size > limit:
            raise message_too_long(f"message {index} ({message.role})", size, limit)


def fit_transcript(messages: list[ChatMessage], settings: Settings) -> list[dict]:
    """The transcript as :func:`plain_messages`, within the limits: a message over
    ``max_message_chars`` is a 413 naming its index; beyond ``max_conversation_chars`` in all, the
    oldest turns are left out (never the last user message, which is the one answered) and a
    system note in their place says so. Replaying a transcript is rules only, but every turn
    still costs its length, and the server keeps the session's turns."""
    check_message_lengths(messages, settings.max_message_chars)
    plain = plain_messages(messages)
    last_user = max((i for i, m in enumerate(plain) if m["role"] == "user"), default=len(plain) - 1)
    total, limit, drop = sum(len(m["content"]) for m in plain), settings.max_conversation_chars, 0
    while total > limit and drop < last_user:
        total -= len(plain[drop]["content"])
        drop += 1
    if not drop:
        return plain
    log.info("chat transcript over max_conversation_chars: left out its %d oldest messages", drop)
    note = (f"({drop} earlier messages were left out: the conversation is over {limit:,} characters, "
            "setting max_conversation_chars)")
    return [{"role": "system", "content": note}, *plain[drop:]]


def last_user_media(messages: list[ChatMessage]) -> tuple[ImagePart | None, AudioPart | None]:
    """The first image and audio part of the last user message (earlier media was already answered)."""
    last = next((m for m in reversed(messages) if m.role == "user"), None)
    if last is None or not isinstance(last.content, list):
        return None, None
    image = next((p for p in last.content if isinstance(p, ImagePart)), None)
    audio = next((p for p in last.content if isinstance(p, AudioPart)), None)
    return image, audio


class CompletionIds:
    """One completion's id, creation time and model name, shared by all its chunks."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def _envelope(self, obj: str, choice: dict) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": [choice]}

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra: Any) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._envelope("chat.completion.chunk", choice), **extra}

    def completion(self, answer: str, recsage: dict) -> dict:
        choice = {"index": 0, "message": {"role": "assistant", "content": answer, "refusal": None},
                  "logprobs": None, "finish_reason": "stop"}
        return {**self._envelope("chat.completion", choice), "usage": None, "recsage": recsage}


def sse_data(payload: dict | str) -> str:
    """One server-sent event in OpenAI's framing: a ``data:`` line, then a blank line."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=json_default)
    return f"data: {text}\n\n"


def json_default(value: Any):
    """numpy scalars and paths inside agent results become plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def models_list() -> dict:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "recsage"}]}
