"""``recsage bench tasks``: p50/p95 seconds per profile, task and model in one table (eval.bench.tasks)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import bench, output_options, project_options, report, settings


@bench.command("tasks")
@project_options()
@click.option("--requests", "n_requests", type=int, default=10, show_default=True,
              help="The first N requests of eval/data/chat_requests.jsonl, the same for every profile.")
@click.option("--quality", "quality_file", type=click.Path(path_type=Path), default=None, is_flag=False,
              flag_value="builtin", metavar="[FILE]",
              help="Also measure a quality profile: the settings in effect with this TOML's keys in their "
                   "place; --quality alone is the built-in one (eval/data/quality.toml: Qwen 0.5B tool choice, combined with the rule triggers).")
@output_options
@click.pass_context
def bench_tasks(ctx, n_requests, quality_file, as_json, out_file):
    """Seconds per request for request understanding, tool choice, retrieval, rerank, explanations,
    `recommend -k 5 --explain` and a chat turn, per profile and model (one warm-up request each, not counted)."""
    from agent.cli.chat import build_agent
    from agent.core.progress import progress
    from eval.bench.tasks import QUALITY_FILE, profile_settings, request_texts
    from eval.bench.tasks import bench_tasks as run

    texts = request_texts(n_requests)  # a bad --requests fails before any model loads
    configs = {"default": settings(ctx)}
    if quality_file is not None:
        path = QUALITY_FILE if str(quality_file) == "builtin" else quality_file
        configs["quality"] = profile_settings(configs["default"], path)
    profiles = {name: (lambda config=config: build_agent(ctx, config=config)) for name, config in configs.items()}
    result = run(profiles, texts, progress)
    if report(result, as_json, out_file):
        print_tasks_table(result)


def print_tasks_table(result: dict) -> None:
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("profile", "task", "model", "p50 s", "p95 s", "n", "budget s", "within budget",
                  title=f"latency per model and task: {len(result['requests'])} requests of "
                        f"eval/data/chat_requests.jsonl ({result['warmup']})")
    for r in result["rows"]:
        table.add_row(r["profile"], r["task"], r["model"], f"{r['p50_s']:.3f}", f"{r['p95_s']:.3f}", str(r["n"]),
                      "" if r["budget_s"] is None else f"{r['budget_s']:g}", r["within_budget"] or "")
    table_console().print(table)
