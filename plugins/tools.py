"""Built-in agent tools, registered through the same ``register_tools`` hook a third-party plugin uses.

Each tool is a typed function (or, when it holds a model, a class that loads it on first use); its
docstring's first line is what the tool chooser shows the LLM, its hints are the argument schema.
``triggers`` are cheap rule features that help a 135M model choose (see agent/chat/tool_choice.py).
Their text says the catalog's words through placeholders (``{nouns}``: agent.chat.tools.in_words),
and examples that only make sense for movies have neutral twins for other catalogs; messages take
the words from the context's catalog. MovieLens's text is what it was before the words, exactly.
Tools never change the chat state: they read it through the context and report what they did.
"""

from __future__ import annotations

import logging
import threading

from agent.chat.tools import Observation, ToolContext, media_source, tool
from agent.core.errors import InputError, RecsageError
from agent.hookspecs import hookimpl

DEFAULT_K = 10


def _facet_values(item: dict) -> list[str]:
    """Every facet value of a result item (a movie's genres; a product's category and brand)."""
    return [v for values in (item.get("facets") or {}).values() for v in values]


def _item_line(item: dict) -> str:
    year = f" ({item['year']})" if item.get("year") else ""
    facets = f" [{', '.join(_facet_values(item))}]" if _facet_values(item) else ""
    return f"{item.get('rank', '-')}. {item['title']}{year}{facets} (id {item['id']})"


def _items_observation(result: dict, what: str) -> Observation:
    items = result.get("items", [])
    if not items:
        return Observation(f"no {what} matched; loosen the filters or ask for something else", ok=False)
    lines = "\n".join(_item_line(i) for i in items)
    return Observation(f"{len(items)} {what}:\n{lines}", items=items, data={"request_text": result.get("request_text")})


def _excluded_ids(context: ToolContext, exclude, avoid_genres) -> list[str]:
    """Explicit exclusions plus every catalog item of an avoided genre ("something lighter")."""
    avoided = context.catalog.with_facet_values("genres", avoid_genres) if context.catalog is not None else []
    return list(dict.fromkeys([*exclude, *avoided]))


def _filters(facets: dict[str, tuple[str, ...]] | None, year_min: int | None, year_max: int | None):
    from agent.retrieval.retriever import Filters

    if year_min is not None and year_max is not None and year_min > year_max:
        raise InputError(f"year_min {year_min} is after year_max {year_max}")
    return Filters(dict(facets or {}), year_min, year_max)


def _explain(context: ToolContext) -> int:
    """How many of an answer's top items get an explanation (0: none)."""
    settings = context.settings
    return int(getattr(settings, "chat_explained_items", 5)) if getattr(settings, "chat_explain", True) else 0


@tool(triggers=(r"\brecommend", r"\bsuggest", r"\bwhat should i watch\b", r"\bin the mood for\b",
                r"\bi (want|need|feel like)\b", r"\blight(er)?\b|\bdarker\b|\bfunnier\b|\bscarier\b",
                r"\bnot (that|this|the \w+)\b|\bseen (it|that)\b|\bsomething else\b",
                r"\b(give|show) me\b", r"\bsomething\b", r"\bmovie night\b", r"\bfor me\b"),
      examples=("a scary movie for Halloween", "any ideas for a cozy evening with my parents?"),
      neutral_examples=("something for a cozy evening", "any ideas for a rainy weekend with my parents?"))
def recommend(context: ToolContext, query: str = "", user: str | None = None,
              facets: dict[str, tuple[str, ...]] | None = None, year_min: int | None = None, year_max: int | None = None, exclude: tuple[str, ...] = (),
              avoid_genres: tuple[str, ...] = (), liked: tuple[str, ...] = (), mentioned: tuple[str, ...] = (),
              k: int = DEFAULT_K) -> Observation:
    """Recommend {nouns} for a request (mood, theme, genre) and/or a user's taste, each with a reason."""
    result = context.recommender.recommend(
        user=user, query=query or None, k=k, filters=_filters(facets, year_min, year_max),
        exclude=_excluded_ids(context, exclude, avoid_genres), explain=_explain(context),
        liked=list(liked), mentioned=list(mentioned),
    )
    return _items_observation(result, "recommendations")


@tool(triggers=(r"\bsearch\b", r"\bfind\b", r"\blook(ing)? up\b", r"\bwhich (movies?|films?|{noun}|{nouns})\b",
                r"\b(is|are) there (any )?(movies?|films?|{noun}|{nouns})\b", r"\blist (movies?|films?|{noun}|{nouns})\b"),
      examples=("find {nouns} about volcanoes", "are there films set on a submarine?"),
      neutral_examples=("find {nouns} about volcanoes", "are there any {nouns} for camping?"))
def search_catalog(context: ToolContext, query: str, k: int = DEFAULT_K) -> Observation:
    """Search the catalog by words (title, plot, genre, tags), not personalised."""
    result = context.recommender.recommend(query=query, k=k, explain=False)
    return _items_observation(result, "search results")


@tool(triggers=(r"\btell me (more )?about\b", r"\bdetails?\b", r"\bwho (directed|stars|is in)\b",
                r"\bwhat is (it|that|the \w+ one) about\b", r"\bplot\b", r"\binfo(rmation)?\b", r"\bcast\b",
                r"\bwhat('s| is) .* about\b"),
      examples=("who stars in Jaws?", "when did the third one come out?"),
      neutral_examples=("tell me about the second one", "when did the third one come out?"))
def item_details(context: ToolContext, item: str) -> Observation:
    """Facts about one {noun} (year, genres, tags, plot, people), by id or title."""
    item_id = context.catalog.resolve(item) if context.catalog is not None else item
    facts = context.recommender.item(item_id)
    return Observation(facts.get("card") or facts["title"], data={"item": facts, "focus": item_id})


@tool(triggers=(r"\bmore like\b", r"\bsimilar\b", r"\blike (the )?\w+ one\b", r"\bin the same (vein|spirit|style)\b",
                r"\bsomething like\b", r"\bif i liked\b", r"\b(same|similar) (vibe|feel)\b"),
      examples=("more like Jaws", "I enjoyed Groundhog Day, anything close to it?"),
      neutral_examples=("more like the first one", "I liked the second one, anything close to it?"))
def similar_items(context: ToolContext, item: str, exclude: tuple[str, ...] = (),
                  facets: dict[str, tuple[str, ...]] | None = None, year_min: int | None = None, year_max: int | None = None, k: int = DEFAULT_K) -> Observation:
    """{Nouns} similar to one given {noun} (by id, by title, or by its place in the last answer)."""
    item_id = context.catalog.resolve(item) if context.catalog is not None else item
    filters, explain = _filters(facets, year_min, year_max), _explain(context)
    try:
        result = context.recommender.recommend(history=[item_id], k=k, exclude=[*exclude, item_id],
                                               filters=filters, explain=explain)
    except InputError:
        # Items nobody rated enough are outside the collaborative retriever: fall back to their facts.
        facts = context.recommender.item(item_id)
        query = " ".join([facts["title"], *_facet_values(facts), *facts.get("tags", [])[:8]])
        result = context.recommender.recommend(query=query, k=k, exclude=[*exclude, item_id],
                                               filters=filters, explain=explain)
    obs = _items_observation(result, f"similar {context.words.nouns}")
    obs.data["focus"] = item_id
    return obs


@tool(triggers=(r"\bonly\b", r"\bjust\b", r"\bfilter\b", r"\b(after|before|since|between|until) (19|20)\d\d\b",
                r"\b(from|in) the (19|20)?\d0'?s\b", r"\bolder\b|\bnewer\b|\brecent\b", r"\bkeep\b"),
      examples=("only dramas", "keep the ones made before 1970"),
      neutral_examples=("only the ones from after 2015", "keep the ones made before 1970"))
def filter_items(context: ToolContext, facets: dict[str, tuple[str, ...]] | None = None, year_min: int | None = None,
                 year_max: int | None = None, query: str = "", user: str | None = None,
                 exclude: tuple[str, ...] = (), liked: tuple[str, ...] = (), mentioned: tuple[str, ...] = (),
                 k: int = DEFAULT_K) -> Observation:
    """Narrow the current recommendations to genres (or other facets) and/or a year range."""
    values = [v for vs in (facets or {}).values() for v in vs]
    if not values and year_min is None and year_max is None:
        raise InputError("say which genre (or other value of the catalog) or years to keep, "
                         "e.g. 'only comedies' or 'only after 2000'")
    if not query and user is None:
        query = " ".join(values) or f"popular {context.words.nouns}"
    return recommend(context, query=query, user=user, facets=facets, year_min=year_min, year_max=year_max,
                     exclude=exclude, liked=liked, mentioned=mentioned, k=k)


@tool(triggers=(r"\bhistory\b", r"\b(have i|i have|i've|did i) (seen|watched|rated|{verb})\b",
                r"\bmy (ratings|movies|{nouns})\b",
                r"\bwhat (did|has) (i|user \d+)\b", r"\brated\b"),
      examples=("what has user 12 rated?", "remind me which movies I gave high ratings"),
      neutral_examples=("what has user 12 {verb}?", "remind me which {nouns} I {verb}"))
def user_history(context: ToolContext, user: str, k: int = DEFAULT_K) -> Observation:
    """What a user has rated, most recent first (their taste, for the chat)."""
    if context.catalog is None:
        raise InputError("user histories need the chat's catalog and its interactions log: "
                         "build the tool context with catalog=ChatCatalog(items, interactions)")
    history = context.catalog.user_history(user)
    rows = history[::-1][:k]
    items = []
    for rank, (item_id, rating) in enumerate(rows, start=1):
        item = context.catalog.items.get(item_id)
        items.append({"id": item_id, "title": item.title if item else item_id, "year": item.year if item else None,
                      "facets": {n: list(v) for n, v in item.facets.items()} if item else {}, "rank": rank,
                      "rating": rating})
    lines = "\n".join(_item_line(i) + (f" rated {i['rating']:g}" if i["rating"] is not None else "") for i in items)
    # Rated where the log has ratings (MovieLens's stars), else the catalog's verb (a shop's "bought").
    verb = "rated" if any(rating is not None for _, rating in history) else context.words.verb
    header = f"user {user} {verb} {len(history)} {context.words.nouns}; the latest {len(items)}"
    return Observation(f"{header}:\n{lines}", items=items)


class _ConverterTool:
    """Base of the media tools; the subclass's docstring is what the LLM reads. The converter (and
    its model) is built on the first call, once; a file without content is a tool error. Only a
    file attached to this turn is read (any path in the local REPL): see ``media_source``."""

    converter_name = ""
    kind = ""
    """What the file is, in words ("image"), for messages."""
    empty = ""
    """Why a file gave no text and what to do, with ``{what}`` (the file as the user knows it)."""
    label = ""

    def __init__(self):
        self._converter = None
        self._lock = threading.Lock()

    def converter(self, settings):
        with self._lock:
            if self._converter is None:
                from agent.core.config import load_settings
                from agent.plugins import load_converter

                self._converter = load_converter(settings or load_settings(), self.converter_name)
            return self._converter

    def text_of(self, conversion) -> str:
        raise NotImplementedError

    def __call__(self, context: ToolContext, path: str) -> Observation:
        source, what = media_source(context, path, self.kind)
        converter = self.converter(context.settings)
        try:
            text = self.text_of(converter.convert(source))
        except Exception as exc:  # re-raised naming the input, not the server's path
            if what == str(path):
                raise
            if not isinstance(exc, RecsageError):
                logging.getLogger(__name__).exception("%s failed on an attached file", self.name)
            raise InputError(str(exc).replace(str(source), what) or type(exc).__name__) from None
        if not text:
            raise InputError(self.empty.format(what=what))
        return Observation(f'{self.label}: "{text}"', data={"text": text})


class TranscribeAudio(_ConverterTool):
    """Transcribe a voice note (an audio file) into text."""

    name = "transcribe_audio"
    converter_name = "whisper"
    kind = "voice note"
    empty = "no speech found in {what}: record the voice note again, closer to the microphone"
    label = "transcript"
    triggers = (r"\.(wav|mp3|flac|ogg|m4a|opus|webm)\b", r"\btranscri", r"\bvoice (note|message)\b",
                r"\b(listen|audio|recording)\b")
    examples = ("transcribe note.m4a", "what did I say in clip.wav?")

    def text_of(self, conversion) -> str:
        return conversion.details.get("text", "")


class DescribeImage(_ConverterTool):
    """Read a photo or poster: the text printed on it (titles, names, taglines)."""

    name = "describe_image"
    converter_name = "ocr"
    kind = "image"
    empty = "no readable text in {what}; without CLIP weights a photo is read by OCR only"
    label = "text on the image"
    triggers = (r"\.(jpe?g|png|webp|gif|bmp|tiff?)\b", r"\b(photo|picture|image|poster|screenshot)\b")
    examples = ("read the poster in scan.png", "what is written on cover.jpg?")

    def text_of(self, conversion) -> str:
        return conversion.card_fields.get("poster_text", "")


@hookimpl
def register_tools(register):
    for fn in (recommend, search_catalog, item_details, similar_items, filter_items, user_history):
        register(fn)
    register(TranscribeAudio())
    register(DescribeImage())
