"""Validated settings: defaults, then a TOML file, then environment, then CLI flags.

Every field carries help text; unknown keys are an error (``extra="forbid"``) so a typo in a
config file is reported instead of silently ignored.
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.core.errors import InputError

LLM_ROLES = ("llm", "llm_qwen05", "llm_qwen15")
"""Roles that hold a causal LM (agent.provision.roles): any of them can serve an LLM task."""
MODEL_ROLES = (*LLM_ROLES, "whisper", "text_embedder", "ocr", "vad", "clip")
LLM_TASKS = ("understand", "tool_choice", "rerank", "explain", "answer")
"""What the LLM is asked to do: read the request, pick a chat tool, score candidates, explain a pick,
write the chat answer. ``Settings.task_models`` names the LLM role each one uses."""
REPO_ADAPTER = Path(str(importlib.resources.files("finetune") / "adapters" / "rerank"))
"""The shipped reranker LoRA adapter (small, committed; recipe in finetune/configs/)."""


class ConfigBase(BaseModel):
    """Base of every recsage configuration (settings, training recipes, model hyperparameters).

    Unknown keys are errors, every field has a description (``help()`` prints them) and a
    constraint where one makes sense, and invalid values become one ``InputError`` line that
    names the field and what to do.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def help(cls) -> str:
        """One line per field: name, type, default and description."""
        lines = []
        for name, info in cls.model_fields.items():
            default = info.get_default(call_default_factory=True)
            kind = getattr(info.annotation, "__name__", str(info.annotation))
            lines.append(f"{name} ({kind}, default {default!r}): {info.description}")
        return "\n".join(lines)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "config") -> Self:
        """Validate ``data``; the first error becomes an ``InputError`` naming the field and ``source``."""
        try:
            return cls(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise InputError(
                f"invalid {cls.__name__} key {where!r} in {source}: {first['msg']} "
                f"(valid keys: {', '.join(cls.model_fields)})"
            ) from None

    @classmethod
    def from_toml(cls, path: Path, **overrides) -> Self:
        """Read a flat TOML file, apply ``overrides`` (None values ignored), validate."""
        data = read_toml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(data, source=str(path))

    def with_overrides(self, **changes) -> Self:
        """A validated copy with ``changes`` applied."""
        return type(self).from_mapping({**self.model_dump(), **changes}, source="overrides")


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is an ``InputError``."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from None


def default_home() -> Path:
    return Path(os.environ.get("RECSAGE_HOME", Path.home() / ".cache" / "recsage")).expanduser()


def default_data_dir() -> Path | None:
    """``RECSAGE_DATA`` if set, else ``../shared/data`` beside the checkout when it exists."""
    env = os.environ.get("RECSAGE_DATA")
    if env:
        return Path(env).expanduser()
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside if beside.is_dir() else None


class LlmServer(ConfigBase):
    """One OpenAI-compatible LLM server (vLLM's ``vllm serve``, or any /v1/completions endpoint)
    serving an LLM role when ``llm_backend = "openai"`` (agent/llm_server.py)."""

    url: str = Field(
        description="Base URL of the server's OpenAI API, ending in /v1, e.g. http://127.0.0.1:8000/v1.",
        pattern=r"^https?://\S+$",
    )
    model: str = Field(
        "", max_length=200,
        description=(
            "The served model name of the base model (vLLM --served-model-name); empty = the role's name."
        ),
    )
    api_key_env: str = Field(
        "", max_length=200,
        description="Environment variable holding the server's API key (sent as a bearer token); empty = none.",
    )
    timeout_s: float = Field(120.0, gt=0, le=3600, description="Seconds one request to the server may take.")


class Settings(ConfigBase):
    """Runtime settings of every command: ``recsage --config FILE`` (TOML) or ``RECSAGE_CONFIG``."""

    home: Path = Field(
        default_factory=default_home,
        description="Cache directory for provisioned models (env RECSAGE_HOME; default ~/.cache/recsage).",
    )
    threads: int = Field(
        2, ge=1, le=256, description="Threads for torch and onnxruntime inside one process."
    )
    ocr_workers: int = Field(
        2, ge=1, le=64, description="OCR processes during ingest (each runs one onnxruntime thread)."
    )
    batch_size: int = Field(
        256, ge=1, le=5000, description="Items per ingest batch; each batch is one Chroma write."
    )
    catalog_max_field_chars: int = Field(
        1_000_000, ge=1_000, le=100_000_000,
        description=(
            "Characters one field of a CSV catalog may hold; a row with a longer field is reported "
            "as a row error and the rest of the catalog is ingested."
        ),
    )

    # --- limits: the most work one input or request may cause (checked before the work starts) ------
    max_image_bytes: int = Field(
        20_000_000, ge=1, description="Images larger than this many bytes are rejected."
    )
    max_image_pixels: int = Field(
        40_000_000, ge=1,
        description="Images with more pixels than this are rejected, from the header, before decoding.",
    )
    image_seconds: float = Field(
        60.0, gt=0, le=3600,
        description=(
            "Seconds OCR may spend on one image in the ingest worker processes; a worker over it is "
            "stopped and replaced, and the image is reported as failed."
        ),
    )
    max_audio_bytes: int = Field(
        100_000_000, ge=1, description="Audio files larger than this many bytes are rejected."
    )
    max_audio_seconds: float = Field(
        600.0, gt=0, description="Audio longer than this is rejected (from the header when it says)."
    )
    audio_min_rate: int = Field(
        8_000, ge=1, le=1_000_000,
        description="Audio whose header claims a lower sample rate (Hz) is rejected before decoding.",
    )
    audio_max_rate: int = Field(
        192_000, ge=1, le=1_000_000,
        description=(
            "Audio whose header claims a higher sample rate (Hz) is rejected before decoding: "
            "resampling cost grows with the claimed rate, not with the file's size."
        ),
    )
    max_video_bytes: int = Field(
        100_000_000, ge=1, description="Video files larger than this many bytes are rejected."
    )
    max_video_seconds: float = Field(
        600.0, gt=0, le=86_400,
        description=(
            "Videos longer than this (from the header) are rejected; frames and audio past it are never "
            "decoded. Speech beyond max_audio_seconds is not transcribed."
        ),
    )
    max_video_frames: int = Field(
        32, ge=1, le=1_000,
        description=(
            "Frames sampled from one video (one a second, fewer for long clips so they cover it all); "
            "near-duplicates are dropped before OCR."
        ),
    )
    max_video_pixels: int = Field(
        8_294_400, ge=1,
        description="Videos whose frames (from the header) have more pixels than this are rejected (default 4K).",
    )
    max_message_chars: int = Field(
        8_000, ge=1, le=1_000_000,
        description="Characters one chat message may hold (/v1/chat, each message of /v1/chat/completions).",
    )
    max_conversation_chars: int = Field(
        64_000, ge=1, le=10_000_000,
        description=(
            "Characters of a whole /v1/chat/completions transcript; the oldest turns beyond it are "
            "dropped (the last user message is always kept) and the server logs a note."
        ),
    )
    max_forward_tokens: int = Field(
        16_384, ge=64, le=1_000_000,
        description=(
            "Tokens one LLM forward pass may read (rows x length); a longer prompt is cut from its "
            "start to fit (and to the model's context), keeping its end, where the question is."
        ),
    )
    llm_prefix_cache: int = Field(
        8, ge=0, le=64,
        description=(
            "Prompt starts each local LLM keeps the key/value cache of, so a prompt that begins like one "
            "(the tool chooser's system prompt) reads only the rest; 0: off."
        ),
    )
    vad_threshold: float = Field(
        0.5, gt=0, lt=1, description="Silero VAD speech probability needed to count a frame as speech."
    )
    no_speech_threshold: float = Field(
        0.6, gt=0, le=1, description="Whisper no-speech probability above which a segment is dropped."
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Per-role override: a local path or a hub id instead of the provisioned model. "
            f"Roles: {', '.join(MODEL_ROLES)}."
        ),
    )
    task_models: dict[str, str] = Field(
        default_factory=lambda: dict.fromkeys(LLM_TASKS, "llm"),
        description=(
            "The LLM role each task uses, e.g. {explain = \"llm_qwen05\"}; tasks left out use \"llm\". "
            f"Tasks: {', '.join(LLM_TASKS)}. Roles: {', '.join(LLM_ROLES)} (pull a Qwen role first: "
            "`recsage models pull --role llm_qwen05`)."
        ),
    )
    clip_model: str = Field("ViT-B-32", description="open_clip architecture name for the CLIP role.")
    clip_checkpoint: Path | None = Field(
        None,
        description=(
            "Local open_clip checkpoint with real CLIP weights. Without it the image path uses "
            "OCR only (no PyPI package carries CLIP weights)."
        ),
    )
    image_encoder: Path | None = Field(
        None,
        description=(
            "Folder of an image encoder trained here (`recsage train-image-encoder`: <run dir>/encoder). "
            "Ingest then stores image vectors in the card space (collection items_image_encoder); "
            "real CLIP weights, when configured, take its place."
        ),
    )
    photo_image_weight: float = Field(
        1.0, ge=0, le=10,
        description=(
            "Weight of a photo's image vector (from the trained image_encoder, when one is configured) fused "
            "with the text search over its OCR text in request-only recommendations; 0 = OCR only. 1 beat "
            "OCR alone on held-out photo queries (README, Image encoder)."
        ),
    )

    # --- reranking (agent/rerank/reranker.py); defaults chosen on the validation halves (README) ---------
    rerank_adapter: Path | None = Field(
        REPO_ADAPTER,
        description=(
            "LoRA adapter (peft folder) merged into the LLM for reranking; the shipped one is "
            "finetune/adapters/rerank. Empty = the zero-shot base model."
        ),
    )
    rerank_requests: bool = Field(
        True, description="Rerank when the request has text (typed query, photo text, voice note)."
    )
    rerank_sequential: bool = Field(
        False, description="Rerank history-only recommendations (no request text)."
    )
    rerank_depth: int = Field(20, ge=1, le=100, description="How many retriever candidates the LLM reranks.")
    rerank_alpha: float = Field(
        0.8, ge=0, le=1, description="Weight of the LLM's z-scored score against the retriever's."
    )

    # --- chat agent (agent/chat/agent.py) -------------------------------------------------------------
    chat_tool_choice: Literal["combined", "llm", "rules"] = Field(
        "combined",
        description=(
            "How the chat picks a tool: the LLM's constrained scores plus rule triggers (combined), "
            "the LLM alone, or rules alone; `recsage bench chat` measures all three."
        ),
    )
    chat_tool_prompt: Literal["list", "turns"] = Field(
        "list",
        description=(
            "How the tool chooser's prompt shows the tools' examples: in the system prompt, scores "
            "calibrated (list; suits SmolLM2-135M), or as earlier chat turns (turns; suits the Qwen roles)."
        ),
    )
    understanding: Literal["rules", "llm"] = Field(
        "rules",
        description=(
            "How a conversation becomes a structured request: rules only, or rules plus the LLM "
            "(task_models.understand) writing JSON under a schema, merged (agent/chat/understand.py; slower)."
        ),
    )
    chat_explain: bool = Field(
        True, description="Chat answers explain their top items (LLM explanations; slower)."
    )
    chat_explained_items: int = Field(
        5, ge=1, le=10,
        description=(
            "How many of a chat answer's top items get an explanation; the rest are listed without one. "
            "Explanation time grows with this number (a chat turn's budget on 2 cores)."
        ),
    )
    explain_repair: bool = Field(
        False,
        description=(
            "When a generated explanation fails the grounding check, generate once more with a stricter "
            "prompt before falling back to the template: more LLM sentences, about twice the explain time "
            "(the quality setting; off keeps `recommend --explain` within its latency budget)."
        ),
    )
    explain_constrained: bool = Field(
        True,
        description=(
            "Constrain the explanation LLM's decoding to words its evidence supports (plus connectives), "
            "so generated sentences pass the grounding check; off lets it write freely (then most fail "
            "and the template is delivered)."
        ),
    )

    # --- HTTP server (agent/server/app.py) ---------------------------------------------------------
    request_timeout_s: float = Field(
        300.0, gt=0, le=3600,
        description=(
            "Seconds one HTTP request may run (a streamed chat: the whole stream) before the server "
            "answers 503; generous because concurrent chats queue for the one locked LLM."
        ),
    )
    chat_sessions_max: int = Field(
        1000, ge=1, le=1_000_000,
        description=(
            "Chat sessions the server keeps in memory for /v1/chat (session_store = \"memory\"); the least "
            "recently used is dropped beyond it."
        ),
    )
    chat_session_ttl_s: float = Field(
        86_400.0, gt=0, le=30 * 86_400,
        description="Seconds a /v1/chat session lives after its last turn (in Redis: the keys' TTL).",
    )
    session_store: str = Field(
        "memory",
        description=(
            "Where /v1/chat sessions live: \"memory\" (this process only) or a Redis URL such as "
            "redis://host:6379/0 (rediss:// for TLS, unix:///path.sock), shared by every replica so any of "
            "them continues any conversation; needs `pip install 'recsage[redis]'` "
            "(`recsage serve --session-store`, env RECSAGE_SESSION_STORE)."
        ),
    )

    # --- HTTP edge (agent/server/middleware.py, agent/cli/serve.py): checked before routing ---------
    max_request_bytes: int | None = Field(
        None, ge=1,
        description=(
            "Bytes one request body may carry, counted as it arrives (chunked bodies too); 413 beyond "
            "it. Empty: image and audio as base64 ((max_image_bytes + max_audio_bytes) * 4/3), plus "
            "max_video_bytes (multipart only), plus 1 MB."
        ),
    )
    body_read_timeout_s: float = Field(
        60.0, gt=0, le=3600,
        description="Seconds a client may take to send a whole request body; 408 after it (slow senders).",
    )
    chat_session_max_turns: int = Field(
        100, ge=2, le=100_000,
        description=(
            "Messages one /v1/chat session keeps in its history (user and assistant each count one); "
            "the oldest go first."
        ),
    )
    shutdown_timeout_s: float = Field(
        3.0, ge=0, le=600,
        description="Seconds `recsage serve` lets running requests finish after SIGTERM before cancelling them.",
    )
    keep_alive_s: float = Field(
        5.0, gt=0, le=600,
        description="Seconds `recsage serve` keeps an idle client connection open.",
    )

    # --- model queues of the HTTP server (agent/core/batching.py, agent/server/queues.py) ----------
    serve_batching: bool = Field(
        True,
        description=(
            "The server gathers concurrent requests' model work (explanations, reranking) into shared "
            "forward passes through one queue per model; off: each request runs its own calls in turn."
        ),
    )
    batch_window_ms: float = Field(
        5.0, ge=0, le=1000,
        description="Milliseconds a model queue waits after the oldest waiting request for others to join its batch.",
    )
    batch_models: list[Literal["explain", "rerank", "tool_choice"]] = Field(
        ["explain"],
        description=(
            "Which models get a queue when serve_batching is on. Concurrent chats' tool choices share "
            "the chooser's system prompt and score together in two forward passes (tool_choice). The "
            "reranker's jobs share no prompt prefix, so its queue only runs them one after another "
            "(worth it where the model runs remotely or on an accelerator; docs/architecture.md has the "
            "CPU measurement)."
        ),
    )
    batch_max_rows: int = Field(
        16, ge=1, le=4096,
        description=(
            "Rows (explanations, reranking jobs) one gathered forward takes at most; a pass is also kept "
            "within max_forward_tokens."
        ),
    )
    batch_rank_first_s: float = Field(
        60.0, ge=0, le=600,
        description=(
            "Seconds at most the explanation queue waits while chat turns that arrived before its oldest "
            "job are still choosing a tool or ranking (items reach every chat sooner); 0: never waits."
        ),
    )

    # --- LLM server backend (agent/llm_server.py): issue 14, an OpenAI-compatible server per LLM role ---
    llm_backend: Literal["local", "openai"] = Field(
        "local",
        description=(
            "Where LLM roles run: \"local\" (in this process) or \"openai\" (an OpenAI-compatible server "
            "such as vLLM, one per role in llm_servers; roles without one stay local)."
        ),
    )
    llm_servers: dict[str, LlmServer] = Field(
        default_factory=dict,
        description=(
            "LLM role -> server, e.g. [llm_servers.llm] url = \"http://127.0.0.1:8000/v1\" (used when "
            f"llm_backend = \"openai\"). Roles: {', '.join(LLM_ROLES)}. Keys of a server: "
            + "; ".join(f"{k}: {f.description.rstrip('.')}" for k, f in LlmServer.model_fields.items())
        ),
    )
    rerank_server_adapter: str = Field(
        "rerank", max_length=200,
        description=(
            "Served name of the reranker's LoRA adapter on the LLM server (vLLM --lora-modules NAME=PATH), "
            "sent as the request's model; unused when rerank_adapter is empty (the base model is asked)."
        ),
    )

    @model_validator(mode="after")
    def _limits_agree(self) -> Self:
        """Ranges given the wrong way round would refuse every input; say so at load time."""
        if self.audio_min_rate > self.audio_max_rate:
            raise ValueError(f"audio_min_rate {self.audio_min_rate} is above audio_max_rate {self.audio_max_rate}")
        if self.max_message_chars > self.max_conversation_chars:
            raise ValueError("max_message_chars is above max_conversation_chars: the last message could never fit")
        return self

    @field_validator("session_store")
    @classmethod
    def _known_session_store(cls, value: str) -> str:
        value = value.strip()
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError('use "memory" or a Redis URL (redis://host:6379/0, rediss://..., unix:///path.sock)')
        return value

    @field_validator("llm_servers")
    @classmethod
    def _known_server_roles(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(LLM_ROLES))
        if unknown:
            raise ValueError(f"unknown LLM role(s) {unknown} in llm_servers; roles: {', '.join(LLM_ROLES)}")
        return value

    @field_validator("rerank_adapter", mode="before")
    @classmethod
    def _empty_adapter_is_none(cls, value):
        """``rerank_adapter = ""`` in a config file means the zero-shot model, not the folder "."."""
        return None if value is None or str(value).strip() == "" else value

    @field_validator("task_models")
    @classmethod
    def _known_tasks_and_roles(cls, value: dict[str, str]) -> dict[str, str]:
        """Every task gets a role (unnamed ones the default ``llm``); a typo is an error, not a silent default."""
        for task, role in value.items():
            if task not in LLM_TASKS:
                raise ValueError(f"unknown task {task!r} in task_models; tasks: {', '.join(LLM_TASKS)}")
            if role not in LLM_ROLES:
                raise ValueError(f"task_models.{task} = {role!r} is not an LLM role; roles: {', '.join(LLM_ROLES)}")
        return {task: value.get(task, "llm") for task in LLM_TASKS}

    def llm_role(self, task: str) -> str:
        """The LLM role that serves ``task`` (one of ``LLM_TASKS``)."""
        if task not in LLM_TASKS:
            raise ValueError(f"unknown LLM task {task!r}; tasks: {', '.join(LLM_TASKS)}")
        return self.task_models[task]

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def model_override(self, role: str) -> str | None:
        return self.models.get(role)


def load_settings(config_file: Path | None = None, **overrides) -> Settings:
    """Build settings from an optional TOML file plus explicit overrides (None values ignored)."""
    data: dict = {}
    path = config_file or (
        Path(os.environ["RECSAGE_CONFIG"]) if os.environ.get("RECSAGE_CONFIG") else None
    )
    if path is not None:
        data = read_toml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(data.get("models", {})) - set(MODEL_ROLES)
    if unknown:
        raise InputError(
            f"unknown model role(s) {sorted(unknown)} in config; valid roles: {', '.join(MODEL_ROLES)}"
        )
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"invalid setting {where!r}: {first['msg']} (`recsage config` lists every setting and its valid values)"
        ) from None


def apply_thread_settings(settings: Settings) -> None:
    """Set thread counts explicitly: on 2 cores oversubscription costs 1.5-5x."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        torch.set_num_threads(settings.threads)
    except ImportError:  # pragma: no cover
        pass
