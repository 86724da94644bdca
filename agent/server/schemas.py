"""Request bodies of /v1/recommend and /v1/chat: the same fields as JSON or as multipart form
fields beside ``image`` / ``audio`` file uploads, validated by one pydantic model each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.server.io import ApiError, save_upload
from agent.server.openai_shapes import message_too_long

MEDIA_LIMITS = {"image": "max_image_bytes", "audio": "max_audio_bytes", "video": "max_video_bytes"}
"""Upload field -> the setting that caps its size."""


FacetName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
FacetValues = Annotated[list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]],
                        Field(max_length=50)]


class RecommendRequest(BaseModel):
    """Who the picks are for (a user id, a history, or nobody) and what they ask for."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, min_length=1, max_length=64, description="A MovieLens userId.")
    history: list[str] | None = Field(None, max_length=1000,
                                      description="Item ids the person liked, oldest first (a new user).")
    query: str | None = Field(None, max_length=2000, description="The request in the person's words.")
    k: int = Field(10, ge=1, le=100, description="How many items.")
    genres: list[str] = Field(default_factory=list, max_length=20,
                              description="Keep items of any of these genres (shorthand for facets {\"genres\": [...]}).")
    facets: dict[FacetName, FacetValues] = Field(
        default_factory=dict, max_length=20,
        description="Keep items having, for each facet named, one of its values, e.g. {\"category\": [\"Shoes\"], "
                    "\"brand\": [\"Acme\", \"Zest\"]}; in a multipart form, this object as a JSON string.")
    year_min: int | None = Field(None, ge=1800, le=2100, description="Keep items from this year on.")
    year_max: int | None = Field(None, ge=1800, le=2100, description="Keep items up to this year.")
    exclude: list[str] = Field(default_factory=list, max_length=1000, description="Item ids never returned.")
    explain: bool = Field(False, description="Write a grounded explanation for each item (slower).")
    rerank: bool | None = Field(None, description="LLM reranking; empty = the server's setting.")

    @field_validator("facets", mode="before")
    @classmethod
    def _facets_from_form(cls, value):
        """A multipart form sends the object as a JSON string."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError('facets must be a JSON object such as {"category": ["Shoes"]}') from None
        return value

    def recommend_kwargs(self) -> dict:
        """Keyword arguments of Recommender.recommend (filters grouped as agent.retrieval.retriever.Filters)."""
        from agent.retrieval.retriever import Filters

        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise InputError(f"year_min {self.year_min} is after year_max {self.year_max}")
        facets = {name: tuple(values) for name, values in self.facets.items()}
        if self.genres:
            facets["genres"] = tuple(dict.fromkeys([*facets.get("genres", ()), *self.genres]))
        filters = Filters(facets, self.year_min, self.year_max)
        return {**self.model_dump(exclude={"genres", "facets", "year_min", "year_max"}),
                "filters": filters if filters.active() else None}


class ChatRequest(BaseModel):
    """One chat message; ``session_id`` (from the first event of an earlier turn) continues a chat."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field("", max_length=1_000_000,
                         description="What the person says (may be empty with media); the server's "
                                     "max_message_chars setting bounds it further (413 beyond it).")
    session_id: str | None = Field(None, max_length=64, description="Continue this chat; empty starts one.")
    user: str | None = Field(None, min_length=1, max_length=64, description="A MovieLens userId (new chats).")


LIST_FIELDS = {"history", "genres", "exclude"}


def _multipart_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema()
    props = dict(schema["properties"])
    for name in MEDIA_LIMITS:
        props[name] = {"type": "string", "format": "binary", "description": f"The {name} file (upload)."}
    return {"type": "object", "properties": props}


def body_doc(model: type[BaseModel]) -> dict:
    """OpenAPI: the route takes the model as JSON, or as multipart fields with file uploads."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()},
        "multipart/form-data": {"schema": _multipart_schema(model)},
    }}}


async def _form_data(request: Request, folder: Path, settings: Settings) -> tuple[dict, dict[str, Path]]:
    form = await request.form(max_files=len(MEDIA_LIMITS), max_fields=100)
    fields: dict[str, list[str]] = {}
    media: dict[str, Path] = {}
    for key, value in form.multi_items():
        if key in MEDIA_LIMITS:
            if isinstance(value, str):
                raise InputError(f"{key} must be a file upload (multipart file field), not text")
            setting = MEDIA_LIMITS[key]
            media[key] = await save_upload(value, key, folder, getattr(settings, setting), setting)
        elif isinstance(value, str) and value.strip():
            parts = [p.strip() for p in value.split(",")] if key in LIST_FIELDS else [value]
            fields.setdefault(key, []).extend(p for p in parts if p)
    data = {k: v if k in LIST_FIELDS else v[-1] for k, v in fields.items()}
    return data, media


async def _json_data(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InputError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InputError("the JSON body must be an object (see /docs for its fields)")
    return data


async def parse_body(request: Request, model: type[BaseModel], folder: Path,
                     settings: Settings) -> tuple[BaseModel, dict[str, Path]]:
    """The validated body and the uploaded files (saved in ``folder``), keyed image / audio."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        data, media = await _form_data(request, folder, settings)
    elif content_type in ("application/json", ""):
        data, media = await _json_data(request), {}
    else:
        raise ApiError(415, f"unsupported content type {content_type!r}: send application/json, or "
                            "multipart/form-data with image / audio files", "unsupported_media_type")
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    _check_message(body, settings)
    return body, media


def _check_message(body: BaseModel, settings: Settings) -> None:
    """A chat message over ``max_message_chars`` is refused before any model reads it."""
    message = getattr(body, "message", None)
    if isinstance(message, str) and len(message) > settings.max_message_chars:
        raise message_too_long("the message", len(message), settings.max_message_chars)
