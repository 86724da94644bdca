"""A sample third-party recsage plugin: one agent tool, ``release_age``.

Install it from this folder (``pip install plugins/sample_plugin``); recsage finds it through the
``recsage`` entry-point group, lists it in ``recsage plugins`` and the chat can call it:
"how old is The Matrix?". A tool is a plain typed function: the docstring's first line is what the
LLM reads, the type hints are the argument schema; a parameter annotated ``ToolContext`` receives
the recommender, the catalog and the session state.
"""

from __future__ import annotations

import datetime

from agent.chat.tools import ToolContext, tool
from agent.hookspecs import hookimpl


@tool(triggers=(r"\bhow old\b", r"\byears ago\b", r"\bwhen (was|did) .* (come out|released?)\b"),
      examples=("how old is Jaws?",))
def release_age(context: ToolContext, item: str) -> str:
    """How many years ago a movie came out, by id or title."""
    item_id = context.catalog.resolve(item) if context.catalog is not None else item
    facts = context.recommender.item(item_id)
    if not facts.get("year"):
        return f"{facts['title']} has no release year in the catalog."
    age = datetime.date.today().year - int(facts["year"])
    return f"{facts['title']} came out in {facts['year']}, {age} years ago."


@hookimpl
def register_tools(register):
    register(release_age)
