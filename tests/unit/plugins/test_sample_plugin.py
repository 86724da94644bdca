"""A third-party plugin installed from its own folder (plugins/sample_plugin) is found through the
`recsage` entry-point group: `recsage plugins` lists its tool and the chat calls it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_recsage

SAMPLE = REPO / "plugins" / "sample_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """pip-install a copy of the sample plugin into a private folder; env that puts it on the path."""
    root = tmp_path_factory.mktemp("sample_plugin")
    source = root / "src"
    shutil.copytree(SAMPLE, source)  # builds write into the source folder: keep the repo clean
    target = root / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(source)], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


def _tools(env=None) -> dict[str, str]:
    out = run_recsage("plugins", "--json", env=env)
    assert out.returncode == 0, out.stderr
    return {r["name"]: r["plugin"] for r in json.loads(out.stdout)["registered"] if r["kind"] == "tool"}


def test_installed_plugin_tool_is_listed_and_only_when_installed(installed):
    assert "release_age" not in _tools()
    tools = _tools(installed)
    assert tools["release_age"] == "recsage_sample"
    assert tools["recommend"] == "builtin_tools"  # built-ins load through the same path


def test_plugin_tool_follows_the_tool_protocol():
    sys.path.insert(0, str(SAMPLE))
    try:
        from recsage_sample import release_age

        from agent.chat.catalog import ChatCatalog
        from agent.chat.tools import Tool, ToolContext
        from tests.fakes.chat import ITEMS, FakeRecommender

        tool = Tool(release_age)
        assert tool.parameters["required"] == ["item"] and "context" not in tool.parameters["properties"]
        obs = tool(ToolContext(recommender=FakeRecommender(), catalog=ChatCatalog(ITEMS)), {"item": "The Matrix"})
        assert obs.ok and "came out in 1999" in obs.text
    finally:
        sys.path.remove(str(SAMPLE))
        sys.modules.pop("recsage_sample", None)


@pytest.mark.integration
def test_chat_calls_the_installed_plugin_tool(installed, movielens_store):
    store, movielens = movielens_store
    out = run_recsage("chat", "--store", store, "--movielens", movielens, "--json", "how old is The Matrix?",
                      env=installed)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["tool"] == "release_age" and data["calls"][-1]["arguments"] == {"item": "2571"}
    assert "came out in 1999" in data["answer"]
