"""``recsage init`` (write a project file) and ``recsage project`` (show the project a command would use)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import cli, flags, output_options, project, project_options, report
from agent.core.errors import InputError
from agent.core.project import (
    PROJECT_FILE,
    SECTIONS,
    CatalogSource,
    InteractionsSource,
    StoreTarget,
    movielens_project,
    project_toml,
    read_project,
    toml_value,
)

EXAMPLES: dict[str, dict[str, object]] = {
    "catalog": {"path": "catalog.jsonl", "format": "auto", "id": "sku", "title": "name",
                "text": ["description"], "facets": ["category", "brand"], "people": ["designer"], "tags": "tags",
                "year": "year", "date": "released", "image": "image", "audio": "audio", "video": "video",
                "posters": "posters", "noun": "product", "nouns": "products", "verb": "bought", "audience": "shopper"},
    "interactions": {"path": "events.csv", "user": "customer", "item": "sku", "time": "ts", "rating": "stars",
                     "min_rating": 4.0, "min_count": 5},
    "store": {"path": "store", "url": "http://127.0.0.1:8000", "artifacts": "artifacts"},
}
"""A placeholder per key of the template (a shop's column names); keys in COMMENTED (optional ones)
are written commented out."""
COMMENTED = {"catalog": {"people", "year", "date", "audio", "video", "posters", "noun", "nouns", "verb", "audience"},
             "interactions": {"min_rating"}, "store": {"url"}}
SECTION_CLASSES = {"catalog": CatalogSource, "interactions": InteractionsSource, "store": StoreTarget}
HEADER = """# recsage project file: where the catalog, its interactions log, the store and the trained
# artefacts are. Paths are relative to this file. Every recsage command run in this folder (or given
# --project FILE) reads it; --movielens/--store flags override its sections.
"""


def template() -> str:
    """The commented template: every key of every section, each with its description."""
    lines = [HEADER]
    for section in SECTIONS:
        model = SECTION_CLASSES[section]
        summary = model.__doc__.strip().splitlines()[0].split(": ", 1)[-1]  # past "``[section]``: "
        lines.append(f"[{section}]  # {summary}")
        for key, info in model.model_fields.items():
            lines.append(f"# {info.description}")
            known = key in EXAMPLES[section]  # a key added later without an example stays commented out
            mark = "# " if key in COMMENTED[section] or not known else ""
            lines.append(f"{mark}{key} = {toml_value(EXAMPLES[section].get(key, f'<{key}>'))}")
        lines.append("")
    return "\n".join(lines)


def movielens_mapping(directory: Path, target: Path) -> str:
    """The MovieLens folder as a project file beside ``target``: store and artefacts next to it,
    posters from DIR/../posters when that folder exists."""
    directory = Path(directory).resolve()
    if not (directory / "movies.csv").exists():
        raise InputError(f"{directory}/movies.csv not found: --movielens must be a MovieLens folder "
                         "(e.g. ml-latest-small; `recsage data fetch` downloads it)")
    folder = target.resolve().parent
    posters = directory.parent / "posters"
    mapping = movielens_project(directory, store=folder / "store", artifacts=folder / "artifacts",
                                posters=posters if posters.is_dir() else None)
    return (f"# recsage project file: MovieLens ({directory.name}) through the MovieLens loader, its ratings\n"
            "# as the interactions log (every rating an event). `recsage init` writes a commented template.\n\n"
            + project_toml(mapping, folder))


@cli.command("init")
@click.option("--movielens", type=click.Path(path_type=Path), default=None,
              help="Write the MovieLens mapping of this folder instead of the commented template.")
@click.option("--force", is_flag=True, help="Overwrite an existing project file.")
@click.option("--show", is_flag=True, help="Print the project this folder resolves to; write nothing.")
@click.pass_context
def init(ctx, movielens, force, show):
    """Write ./recsage.toml (or the root --project FILE): a commented template, or --movielens DIR's mapping."""
    if show:
        print_project(ctx, False, None)
        return
    target = Path(ctx.find_root().obj.get("project_file") or PROJECT_FILE)
    if target.exists() and not force:
        raise InputError(f"{target} exists: pass --force to overwrite it")
    text = movielens_mapping(movielens, target) if movielens else template()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    if movielens:
        read_project(target)  # what was written must read back
    click.echo(f"wrote {target}" + ("" if movielens else ": edit the placeholders, then `recsage ingest`"), err=True)


@cli.command("project")
@project_options()
@output_options
@click.pass_context
def show_project(ctx, as_json, out_file):
    """Print the project this invocation resolves to (project file, overridden by the given flags)."""
    print_project(ctx, as_json, out_file)


def print_project(ctx, as_json: bool, out_file: Path | None) -> None:
    resolved = project(ctx)
    if not report(resolved.model_dump(mode="json"), as_json, out_file):
        return
    given = [name for name, value in vars(flags(ctx)).items() if value is not None and name != "movielens_default"]
    click.echo(f"# {resolved.source}" + (f", overridden by --{', --'.join(given)}" if given else ""))
    click.echo(project_toml(resolved))
