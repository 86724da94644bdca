"""Conversation understanding by the LLM: the whole conversation read into a structured request.

The LLM writes JSON under a schema built from the catalog (facet values are an enum of the
catalog's own values; every list and string is bounded), and decoding is constrained to that schema
token by token (lm-format-enforcer's character-level JSON parser), so what comes back always parses
unless the token budget runs out first, in which case the rules' reading stands alone. Titles are
resolved to catalog ids by the catalog's title lookup, with the year when the LLM wrote one.

Rules (:meth:`agent.chat.request.Request.from_conversation`) stay the fast path and the fallback:
:func:`understand` merges the LLM's reading into their Request, it never replaces it. This module
does not import agent.chat.request (which calls it when the setting ``understanding`` is "llm"):
it only reads and extends the Request it is given.
"""

from __future__ import annotations

import functools
import json
import logging
import re

import prompts
from agent.core.errors import InputError
from agent.core.text import normalise

log = logging.getLogger(__name__)

MAX_TITLES = 5
MAX_TITLE_CHARS = 60
MAX_FACETS = 4
MAX_NEED_CHARS = 80
MAX_ENUM_VALUES = 80
"""A facet with more values (brands of a large shop) is left to the rules: a long enum costs prompt
tokens on every turn and a small model picks from it poorly."""
MAX_NEW_TOKENS = 256
"""Enough for the bounded schema filled with short titles; a reading cut off here is dropped."""
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>1[89]\d\d|20\d\d)\)\s*$")
ROLE_NAMES = {"user": "User", "assistant": "Assistant"}


def facet_values(catalog) -> dict[str, str]:
    """value -> facet name, for every facet small enough to offer as an enum."""
    vocabulary = getattr(catalog, "vocabulary", None)
    out: dict[str, str] = {}
    for name, values in (vocabulary.facets.items() if vocabulary is not None else []):
        if len(values) <= MAX_ENUM_VALUES:
            for value in values:
                out.setdefault(value, name)
    return out


def request_schema(values: list[str]) -> dict:
    """The JSON schema the LLM fills: bounded lists of titles and facet values, years, need, ask."""
    titles = {"type": "array", "items": {"type": "string", "maxLength": MAX_TITLE_CHARS}, "maxItems": MAX_TITLES}
    facets = ({"type": "array", "items": {"enum": values}, "maxItems": MAX_FACETS} if values
              else {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 0})
    year = {"anyOf": [{"type": "integer", "minimum": 1800, "maximum": 2100}, {"type": "null"}]}
    text = {"type": "string", "maxLength": MAX_NEED_CHARS}
    properties = {"liked": titles, "disliked": titles, "seen": titles, "wanted": facets, "unwanted": facets,
                  "year_min": year, "year_max": year, "need": text, "ask": text}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def transcript(messages: list[dict]) -> str:
    """The conversation as the LLM reads it: one "User: ..." / "Assistant: ..." line per message."""
    lines = [f"{ROLE_NAMES[m['role']]}: {' '.join(str(m.get('content') or '').split())}"
             for m in messages if m.get("role") in ROLE_NAMES]
    return "\n".join(lines)


def prompt_for(llm, messages: list[dict], values: list[str], words) -> str:
    """``words``: the catalog's words (agent.core.project.CatalogWords), which the prompt says."""
    system = prompts.render("understand.j2", facets=values, words=words)
    return llm.chat(system, prompts.render("understand_user.j2", conversation=transcript(messages)))


def read_with_llm(llm, messages: list[dict], catalog, max_new_tokens: int = MAX_NEW_TOKENS) -> dict | None:
    """The LLM's reading as a dict of the schema, or None when the token budget ran out."""
    values = sorted(facet_values(catalog))
    text = constrained_json(llm, prompt_for(llm, messages, values, catalog.words), request_schema(values),
                            max_new_tokens)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        log.info("LLM reading cut off after %d tokens; rules only", max_new_tokens)
        return None


@functools.lru_cache(maxsize=4)
def _tokenizer_data(tokenizer):
    """lm-format-enforcer's view of a vocabulary (each token's text, and whether it starts a word),
    built once per tokenizer. Written here because the library's transformers integration imports
    a module transformers 5 no longer has; the same two decodes per token as the library's."""
    from lmformatenforcer import TokenEnforcerTokenizerData

    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = {*tokenizer.all_special_ids, _end_token(tokenizer)}  # the end token is never text
    regular = []
    for token in range(len(tokenizer)):
        if token in special or not tokenizer.decode([token]).strip():
            # Whitespace-only tokens are left out: compact JSON needs none, a space inside a title
            # comes with its word (" Troopers"), and small models otherwise pad every step with "\n".
            continue
        after_zero = tokenizer.decode([zero, token])[1:]  # keeps the leading space a word start has
        regular.append((token, after_zero, len(after_zero) > len(tokenizer.decode([token]))))
    return TokenEnforcerTokenizerData(regular, lambda ids: tokenizer.decode(ids).rstrip("\ufffd"),
                                      _end_token(tokenizer), False, len(tokenizer))


def _end_token(tokenizer) -> int:
    """The token that ends the assistant's turn (``<|im_end|>`` for the chat models here)."""
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return end if isinstance(end, int) and end >= 0 and end != tokenizer.unk_token_id else tokenizer.eos_token_id


def constrained_json(llm, prompt: str, schema: dict, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """Greedy decoding where every step may only pick a token the JSON schema allows next; the
    prompt runs once and each step reuses the key/value cache."""
    import torch
    from lmformatenforcer import (
        CharacterLevelParserConfig,
        JsonSchemaParser,
        TokenEnforcer,
    )

    from agent.llm import cache_kwarg, keep_end, returned_cache, token_budget

    tok = llm.tokenizer
    parser = JsonSchemaParser(schema)
    enforcer = TokenEnforcer(_tokenizer_data(tok), parser)
    # TokenEnforcer replaces the parser's config with its own (the vocabulary's alphabet), so this
    # goes in after it: the fields in the schema's order, as the prompt explains them.
    parser.config = CharacterLevelParserConfig(alphabet=parser.config.alphabet, force_json_field_order=True)
    # A conversation too long for the model loses its start, as in LoadedLlm.generate.
    ids = keep_end(tok(prompt, add_special_tokens=False)["input_ids"],
                   token_budget(llm.model, llm.max_forward_tokens) - max_new_tokens)
    end, new = _end_token(tok), []
    with llm.lock, torch.inference_mode():
        out = llm.model(input_ids=torch.tensor([ids]), use_cache=True)
        for _ in range(max_new_tokens):
            allowed = enforcer.get_allowed_tokens(ids + new).allowed_tokens
            logits = out.logits[0, -1].float()
            masked = torch.full_like(logits, float("-inf"))
            masked[allowed] = logits[allowed]
            token = int(masked.argmax())
            if token == end:
                break
            new.append(token)
            out = llm.model(input_ids=torch.tensor([[token]]), use_cache=True,
                            **{cache_kwarg(llm.model): returned_cache(out)})
    return tok.decode(new, skip_special_tokens=True)


def resolve_title(text: str, catalog) -> str | None:
    """A catalog id for a title the LLM wrote ("Super Troopers (2001)"): the same-year item among
    exact title matches (one year off allowed), else the catalog's fuzzy lookup, else None."""
    match = _TITLE_YEAR.match(text.strip())
    title, year = (match["title"], int(match["year"])) if match else (text.strip(), None)
    if not normalise(title):
        return None
    ids = catalog.by_form.get(normalise(title), [])
    if ids and year is not None:
        for tolerance in (0, 1):
            near = [i for i in ids if catalog.items[i].year is not None
                    and abs(int(catalog.items[i].year) - year) <= tolerance]
            if near:
                return catalog._pick(near)
    try:
        return catalog.resolve(title)
    except InputError:
        return None


def merge(request, reading: dict, catalog):
    """The rules' request with the LLM's reading added: titles and facets are unions (rules first;
    a title also disliked drops out of ``liked_ids``), years and words the rules found stand."""
    for key in ("liked", "disliked", "seen"):
        ids = [i for i in (resolve_title(t, catalog) for t in reading.get(key, [])) if i is not None]
        for target in (getattr(request, key), request.mentioned):
            target.extend(i for i in dict.fromkeys(ids) if i not in target)
    names = facet_values(catalog)
    for key, target in (("wanted", request.facets), ("unwanted", request.unwanted)):
        for value in reading.get(key, []):
            if value in names:
                target[names[value]] = tuple(dict.fromkeys([*target.get(names[value], ()), value]))
    if request.year_min is None and request.year_max is None:
        request.year_min, request.year_max = _year(reading.get("year_min")), _year(reading.get("year_max"))
    extra = [w for w in str(reading.get("need") or "").split() if w.lower() not in request.need.lower().split()]
    request.need = " ".join(p for p in (request.need, " ".join(extra)) if p)
    request.ask = request.ask or str(reading.get("ask") or "")
    return request


def _year(value) -> int | None:
    """A plausible year or None: the JSON grammar bounds the type, not the value ("7E59" is a number)."""
    return int(value) if isinstance(value, int | float) and 1800 <= value <= 2100 else None


def understand(request, messages: list[dict], catalog, llm):
    """The rules' ``request`` with the LLM's constrained reading merged in; unchanged when the
    LLM's reading did not finish."""
    reading = read_with_llm(llm, messages, catalog)
    return merge(request, reading, catalog) if reading is not None else request


def understand_with_settings(request, messages: list[dict], catalog, settings):
    """:func:`understand` with the LLM role that ``settings.task_models`` gives the understand task."""
    from agent.provision.models import llm_for

    return understand(request, messages, catalog, llm_for(settings, "understand"))
