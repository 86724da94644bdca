"""The HTTP API and the web chat page: ``create_app(recommender, chat_agent, settings, token)``.

Endpoints: ``/v1/recommend`` (JSON, or multipart with an image / voice-note upload), ``/v1/chat``
(server-sent events of a chat turn), ``/v1/chat/completions`` (OpenAI-compatible, streamed or not),
``/v1/items/{id}`` and its poster, ``/healthz``, OpenAPI at ``/docs``, the chat page at ``/``.
Model work runs in worker threads under ``request_timeout_s``, through one batching queue per model
(:mod:`agent.server.queues`: concurrent requests share forward passes) that is closed when the
server stops; a chat turn streams its items first and each explanation when it is done. Every
error is JSON ``{"error": {"message", "type"}}`` with a 4xx status, or 503 when the server is busy,
and names the input, never a server folder. Before routing, :mod:`agent.server.middleware` checks
the token, the Host and the body's size and pace; a chat turn's stream is closed when its response
ends, however it ends (done, client gone, time out), which frees its session.
"""

from __future__ import annotations

import importlib.resources
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.core.config import Settings
from agent.core.errors import Busy, InputError, RecsageError
from agent.server import io as server_io
from agent.server.io import (
    ApiError,
    BlockingStream,
    TurnResponse,
    error_body,
    hide_paths,
    run_blocking,
)
from agent.server.middleware import EdgeGuard, is_loopback
from agent.server.openai_shapes import (
    CompletionIds,
    CompletionRequest,
    fit_transcript,
    json_default,
    last_user_media,
    models_list,
    sse_data,
)
from agent.server.queues import ModelQueues
from agent.server.schemas import ChatRequest, RecommendRequest, body_doc, parse_body
from agent.server.sessions import SessionStore, open_session_store

WEB_DIR = Path(str(importlib.resources.files("agent.server") / "web"))
log = logging.getLogger("recsage.server")


class SafeJSONResponse(JSONResponse):
    """JSON that tolerates numpy scalars and paths inside agent results."""

    def render(self, content: Any) -> bytes:
        import json

        return json.dumps(content, ensure_ascii=False, default=json_default).encode("utf-8")


@dataclass
class AppState:
    recommender: Any
    chat_agent: Any
    settings: Settings
    token: str | None
    sessions: SessionStore
    queues: ModelQueues | None = None
    folders: tuple[str, ...] = ()
    """Server folders error messages must not show (:func:`agent.server.io.server_folders`)."""


def _state(request: Request) -> AppState:
    return request.app.state.recsage


# --- security -----------------------------------------------------------------------------------


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a bearer token (the models and data are open)."""
    if token is not None and not token.strip():
        raise InputError("the token is empty: pass --token with a long random string (e.g. `openssl rand -hex 32`)")
    if token is None and not is_loopback(host):
        raise InputError(
            f"--host {host} makes the API reachable from other machines: pass --token T (or set "
            "RECSAGE_TOKEN) so clients must send `Authorization: Bearer T`, or bind to 127.0.0.1"
        )


bearer_scheme = HTTPBearer(auto_error=False, description="The token given to `recsage serve --token`.")



async def upload_folder(request: Request):
    """A private temporary folder for this request's uploads, removed after the response is sent;
    its name never reaches the client (:func:`_hidden`)."""
    with tempfile.TemporaryDirectory(prefix="recsage-upload-") as folder:
        request.state.upload_folder = folder
        yield Path(folder)


def _hidden(request: Request, text: str) -> str:
    """``text`` without the server's folders (this request's upload folder, temp, home, models)."""
    state = _state(request)
    return hide_paths(text, (getattr(request.state, "upload_folder", None), *state.folders))


UploadFolder = Annotated[Path, Depends(upload_folder, scope="request")]
# the token itself is checked by EdgeGuard before routing; the dependency documents it in OpenAPI
router = APIRouter(prefix="/v1", dependencies=[Depends(bearer_scheme)])
SSE = {200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}}


# --- recommend and items ------------------------------------------------------------------------


@router.post("/recommend", openapi_extra=body_doc(RecommendRequest), summary="Ranked, explained picks")
async def recommend(request: Request, folder: UploadFolder) -> SafeJSONResponse:
    """A user's id or history and/or a request (text, a photo, a voice note) -> ranked items."""
    state = _state(request)
    body, media = await parse_body(request, RecommendRequest, folder, state.settings)
    # the query is read as `recommend --query` reads it (Recommender.read_query): one understanding
    call = partial(state.recommender.recommend, **body.recommend_kwargs(), **media, understand=True)
    return SafeJSONResponse(await run_blocking(call, timeout_s=state.settings.request_timeout_s))


ItemId = Annotated[str, PathParam(min_length=1, max_length=64)]


async def _item(request: Request, item_id: str) -> dict:
    state = _state(request)
    try:
        return await run_blocking(state.recommender.item, item_id, timeout_s=state.settings.request_timeout_s)
    except InputError as exc:
        raise ApiError(404, str(exc), "not_found") from None


@router.get("/items/{item_id}", summary="One item's facts and context card")
async def item(request: Request, item_id: ItemId) -> SafeJSONResponse:
    info = dict(await _item(request, item_id))
    poster = info.pop("poster", None)
    info["poster_url"] = request.app.url_path_for("item_poster", item_id=item_id) if poster else None
    return SafeJSONResponse(info)


@router.get("/items/{item_id}/poster", name="item_poster", summary="The item's poster image",
            response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}})
async def item_poster(request: Request, item_id: ItemId) -> FileResponse:
    from fastapi.responses import Response

    from agent.recommend import poster_image

    settings = _state(request).settings
    poster = (await _item(request, item_id)).get("poster")
    # only a file that verifies as an image is served, whatever path a catalog once named
    image = await run_blocking(poster_image, poster, settings.max_image_bytes, timeout_s=settings.request_timeout_s)
    if image is None:
        raise ApiError(404, f"item {item_id} has no poster", "not_found")
    return Response(image[0], media_type=image[1])


# --- chat ---------------------------------------------------------------------------------------


def sse_event(event: dict) -> str:
    import json

    return f"event: {event.get('type', 'message')}\ndata: {json.dumps(event, ensure_ascii=False, default=json_default)}\n\n"


def _stream_error(exc: Exception) -> dict:
    """An error after the stream began (the status line is already sent): say it as an event."""
    if isinstance(exc, ApiError):
        return error_body(exc.message, exc.kind, status=exc.status)
    if isinstance(exc, InputError):
        return error_body(str(exc), status=400)
    if isinstance(exc, Busy):
        return error_body(str(exc), "conflict", status=409)
    if isinstance(exc, RecsageError):
        return error_body(str(exc), "server_error", status=503)
    log.exception("chat stream failed", exc_info=exc)
    return error_body(f"internal error ({type(exc).__name__}); see the server log", "server_error", status=500)


@router.post("/chat", openapi_extra=body_doc(ChatRequest), responses=SSE, summary="One chat turn, streamed")
async def chat(request: Request, folder: UploadFolder) -> TurnResponse:
    """Events: session, tool, observation, items (as soon as the ranking is known), token (the answer
    as it settles), explanation (one per item, as its batch is done), done (or error). Send the
    session_id of the first event back to continue the conversation; refinements apply to the next
    answer."""
    state = _state(request)
    body, media = await parse_body(request, ChatRequest, folder, state.settings)
    if not body.message.strip() and not media:
        raise InputError("send a message, an image or a voice note")
    timeout = state.settings.request_timeout_s
    session_id, entry = await run_blocking(state.sessions.open, body.session_id, body.user, timeout_s=timeout)
    holder = await run_blocking(entry.acquire, timeout, timeout_s=timeout)  # Redis: a network call
    if holder is None:
        raise ApiError(409, "a turn is already running on this chat session; wait for its done event", "conflict")
    try:  # the hold ends when the turn's generator is closed, not when the response ends
        stream = BlockingStream(entry.session.send(body.message, **media), timeout,
                                on_close=partial(entry.release, holder))
    except BaseException:
        entry.release(holder)
        raise
    first = await stream.next()  # input errors become a 4xx before any byte is sent

    async def events() -> AsyncIterator[str]:
        try:
            yield sse_event({"type": "session", "session_id": session_id})
            event = first
            while event is not None:
                yield sse_event(event)
                event = await stream.next()
        except Exception as exc:  # noqa: BLE001 - reported to the client as an error event
            yield sse_event({"type": "error", **_stream_error(exc)})

    return TurnResponse(events(), stream, partial(_hidden, request))


@router.delete("/chat/{session_id}", summary="Forget a chat session")
async def chat_reset(request: Request, session_id: Annotated[str, PathParam(max_length=64)]) -> dict:
    state = _state(request)
    if not await run_blocking(state.sessions.drop, session_id, timeout_s=state.settings.request_timeout_s):
        raise ApiError(404, f"no chat session {session_id!r} (it may have expired)", "not_found")
    return {"deleted": session_id}


# --- OpenAI-compatible --------------------------------------------------------------------------


def _recsage_extra(done: dict) -> dict:
    return {"items": done.get("items", []), "tool": done.get("tool"), "timings": done.get("timings", {})}


async def _openai_chunks(ids: CompletionIds, first: dict | None, stream: BlockingStream) -> AsyncIterator[str]:
    """OpenAI's stream: a role chunk, content deltas, a finish chunk, then ``data: [DONE]``."""
    yield sse_data(ids.chunk({"role": "assistant", "content": ""}))
    streamed, finished, event = False, False, first
    try:
        while event is not None:
            if event.get("type") == "items":  # the ranking, before the answer's words (OpenAI clients ignore it)
                yield sse_data(ids.chunk({}, recsage={"items": event.get("items", [])}))
            elif event.get("type") == "token" and event.get("text"):
                streamed = True
                yield sse_data(ids.chunk({"content": event["text"]}))
            elif event.get("type") == "done":
                if not streamed and event.get("answer"):
                    yield sse_data(ids.chunk({"content": event["answer"]}))
                finished = True
                yield sse_data(ids.chunk({}, "stop", recsage=_recsage_extra(event)))
            event = await stream.next()
        if not finished:
            yield sse_data(ids.chunk({}, "stop"))
    except Exception as exc:  # noqa: BLE001 - OpenAI clients raise on an in-stream error object
        yield sse_data(_stream_error(exc))
    yield sse_data("[DONE]")


def _media_from_messages(body: CompletionRequest, folder: Path, settings: Settings) -> dict[str, Path]:
    image, audio = last_user_media(body.messages)
    media: dict[str, Path] = {}
    if image is not None:
        media["image"] = server_io.save_data_url(image.image_url.url, folder, settings.max_image_bytes)
    if audio is not None:
        media["audio"] = server_io.save_base64_audio(audio.input_audio.data, audio.input_audio.format, folder,
                                                      settings.max_audio_bytes)
    return media


@router.post("/chat/completions", summary="OpenAI-compatible chat completion (stream or not)",
             responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def chat_completions(request: Request, body: CompletionRequest, folder: UploadFolder):
    """Earlier messages rebuild the conversation's state; the last user message is answered.
    The last user message may carry an ``image_url`` (data URL) or ``input_audio`` part."""
    state = _state(request)
    timeout = state.settings.request_timeout_s
    transcript = fit_transcript(body.messages, state.settings)  # limits: before any decoding or replay
    media = _media_from_messages(body, folder, state.settings)
    session, text = await run_blocking(state.chat_agent.session_from_messages, transcript,
                                       body.recsage_user, timeout_s=timeout)
    stream = BlockingStream(session.send(text, **media), timeout)
    ids = CompletionIds(body.model)
    if not body.stream:
        done = await _answer(stream, request)
        answer = _hidden(request, done.get("answer", ""))
        return SafeJSONResponse(ids.completion(answer, _recsage_extra(done)))
    first = await stream.next()
    return TurnResponse(_openai_chunks(ids, first, stream), stream, partial(_hidden, request))


async def _answer(stream: BlockingStream, request: Request) -> dict:
    """The done event of a turn answered in one piece; a client gone mid-turn stops it at the next step."""
    done: dict = {}
    try:
        while (event := await stream.next()) is not None:
            done = event if event.get("type") == "done" else done
            if await request.is_disconnected():
                break
    finally:
        stream.close()
    return done


@router.get("/models", summary="OpenAI-compatible model list")
async def list_models() -> dict:
    return models_list()


# --- app ----------------------------------------------------------------------------------------


def _error_response(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error_response(exc.status, error_body(_hidden(request, exc.message), exc.kind))

    @app.exception_handler(RecsageError)
    async def recsage_error(request: Request, exc: RecsageError):
        message = _hidden(request, str(exc))
        if isinstance(exc, InputError):
            return _error_response(400, error_body(message))
        if isinstance(exc, Busy):
            return _error_response(409, error_body(message, "conflict"))
        return _error_response(503, error_body(f"the server is not ready: {message}", "server_error"))

    @app.exception_handler(RecursionError)
    async def too_deep(_: Request, exc: RecursionError):
        # json.loads recurses per nesting level: a body nested thousands deep ends here, not in a 500
        return _error_response(400, error_body("the JSON body is nested too deeply; send a flat object "
                                               "(see /docs for the request schema)"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg"))} for e in errors]
        return _error_response(422, error_body(f"{where}: {first.get('msg')} (see /docs for the request schema)",
                                               details=details))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        return _error_response(exc.status_code, error_body(str(exc.detail), "http_error"), exc.headers)


def create_app(recommender, chat_agent, settings: Settings | None = None, token: str | None = None) -> FastAPI:
    """The API over one Recommender and one ChatAgent (both thread-safe); ``token``: bearer token
    every /v1 request must send (None: no authentication, for loopback only; see check_bind)."""
    from importlib.metadata import PackageNotFoundError, version

    settings = settings or Settings()
    queues = ModelQueues(settings)
    if hasattr(recommender, "wrap_part"):  # models loaded from now on get their queue (a fake has none)
        recommender.wrap_part = queues.wrap
    if hasattr(chat_agent, "wrap_chooser"):
        chat_agent.wrap_chooser = queues.wrap_chooser
    try:
        app_version = version("recsage")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        app_version = "0"
    app = FastAPI(title="recsage", version=app_version, default_response_class=SafeJSONResponse,
                  description="Multimodal, LLM-centric movie recommendations that explain themselves.",
                  lifespan=queues.lifespan)
    app.state.recsage = AppState(recommender, chat_agent, settings, token,
                                 open_session_store(chat_agent, settings), queues,
                                 server_io.server_folders(settings, recommender))
    app.include_router(router)
    app.add_middleware(EdgeGuard, token=token, settings=settings)  # before routing: token, Host, body limits
    _install_error_handlers(app)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict:
        return {"status": "ok", "version": app_version, "auth": token is not None}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    return app
