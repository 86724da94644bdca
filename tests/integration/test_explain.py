"""Explanations on the real explanation LLM (the default role, SmolLM2) under the word constraint:
most sentences are generated, and every generated one passes the grounding checker."""

from __future__ import annotations

import numpy as np
import pytest

from agent.core.errors import ModelNotReady
from agent.explain.check import check
from agent.explain.evidence import CoLink, build_evidence
from tests.fakes.evidence import toy_story_evidence

CARDS = [
    ("930", "Title: Notorious (1946)\nGenres: Film-Noir, Romance, Thriller\nDirector: Alfred Hitchcock\n"
            "Cast: Cary Grant, Ingrid Bergman\nTags: assassination\nPlot: A woman is asked to spy on a group "
            "of Nazi friends in South America.", "Notorious", 1946, ("904", "Rear Window", 1954, 19)),
    ("6", "Title: Heat (1995)\nGenres: Action, Crime, Thriller\nTags: heist, bank robbery",
     "Heat", 1995, ("2490", "Ronin", 1998, 41)),
    ("3409", "Title: Miss Congeniality (2000)\nGenres: Comedy, Crime\nTags: pageant",
     "Miss Congeniality", 2000, ("2571", "Matrix, The", 1999, 48)),
    ("1", "Title: The Patriot (2000)\nGenres: Action, Drama, War", "Patriot, The", 2000,
     ("2571", "Matrix, The", 1999, 52)),
]


def _evidences():
    out = [toy_story_evidence()]
    for item_id, card, title, year, (co_id, co_title, co_year, count) in CARDS:
        out.append(build_evidence(item_id, card, {"title": title, "year": year}, np.array([1.0, 0.0]),
                                  history=[(co_id, co_title, co_year)], history_vectors=np.array([[1.0, 0.0]]),
                                  co=CoLink(co_id, co_title, co_year, count)))
    return out


@pytest.mark.integration
def test_constrained_explanations_are_generated_and_pass_the_checker(real_settings):
    from agent.explain.generate import Explainer
    from agent.provision.models import llm_for

    try:
        llm = llm_for(real_settings, "explain")
    except ModelNotReady as exc:
        pytest.fail(f"integration test needs the provisioned llm: {exc}")
    evidences = _evidences()
    out = Explainer(real_settings.with_overrides(explain_constrained=True, explain_repair=False), llm=llm).explain(evidences)
    generated = [(e, ev) for e, ev in zip(out, evidences) if e.status == "generated"]
    assert len(generated) >= 0.8 * len(evidences), [(e.status, e.problems) for e in out]
    for explanation, evidence in generated:
        assert check(explanation.text, evidence).ok, explanation.text
    notorious = out[1].text  # the plot is the richest fact: the sentence retells it
    assert notorious.startswith("19 people who watched Rear Window also watched Notorious (1946)"), notorious
    assert "spy" in notorious or "Nazi" in notorious, notorious
