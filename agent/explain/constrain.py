"""Constrained decoding for explanations: the LLM can only write words its evidence supports.

The grounding check (:mod:`agent.explain.grounding`) rejects a sentence with one word no evidence
supports, and a small model invents descriptions in most first tries. So the decoder is limited
instead: at each step a row may only produce a token that continues a word of its allowed set, a
little punctuation, or the end. The allowed set of one item is built from its evidence (title,
year, card fields, the collaborative link's count, the words its genres imply) plus the
connective vocabulary of ``prompts/explain_allowed_words.txt``, minus what the checker would still
reject: a content word already said (by stem, the tautology rule), a word that would repeat a word
trigram (the loop rule), genre or award words its card does not support, and empty praise. Request
and history words come in only through the item's own evidence (the checker refuses request words
presented as facts about the item, and a history title's words say nothing about the pick).

Words are followed as token paths: a trie over each allowed form's own tokenization, with a leading
space (" thriller") and without (after "("). Only a word's canonical tokens are offered, so a model
that wanted a word outside the set cannot start it with a short piece (" th") and finish it as an
allowed word it did not mean ("through"). Capitalised forms are allowed only for words written so in
the evidence; the checker still decides on names.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Sequence

from agent.core.text import ascii_fold, padded_words, words
from agent.explain.check import ITEM_CLAIMS, all_titles, without_titles
from agent.explain.evidence import Evidence
from agent.explain.grounding import GENRE_IMPLIES, allowed_words, empty_praise, stem

PUNCTUATION = (",", ".", ";", " (", ")", "),", ").", "'s")
"""Non-word tokens a row may write after a word (those the vocabulary has as single tokens)."""
OPENERS = (" (", "(")
"""After these a word follows without a space ("(1999")."""
_FORM = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
"""A word as the decoder writes it: hyphens only inside a compound the evidence has ("Sci-Fi")."""
FILLER = frozenset("""
film films movie movies item items title titles elements plot poster director cast year released rated
interacted viewers viewer someone everyone people pick picks recommend recommended recommendation watch
watched watching see seen saw request requested asked ask want wanted taste tastes kind sort type fit fits
fitting sure worth must check history viewing try give perhaps probably maybe s t ll ve re d m
one only very same other others another being most more much many just even still own such similar no
""".split())
"""Connectives and recommender words the checker accepts but the writer may not use unless the
item's own evidence has them: denied the words it wanted, a small model pads with them ("a war drama
that was a film about a plot in which a director", "the only one who is not the same other one");
without them it cites a fact or stops. The contraction pieces (s, ll, re) only make sense after an
apostrophe the writer never gets."""
NO_END = frozenset("a an the of in which to and or with by for from that who whose is are was were".split())
"""Words after which a clause cannot stop. (Forbidding a stop after every connective was tried: the
model, unable to stop, rambled on in connectives to the token limit.)"""
END = -1
"""Trie key of a node where a whole form ends; its value is that form."""


class Vocabulary:
    """What the constraint needs of a tokenizer: the single-token punctuation, openers and ends,
    and each form's tokens (cached: the connectives recur in every row)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.punctuation = self._single(PUNCTUATION)
        self.openers = self._single(OPENERS)
        ends = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
        self.ends = sorted({t for t in ends if isinstance(t, int) and t >= 0})
        self._tokens: dict[str, tuple[int, ...]] = {}

    def _single(self, texts: Iterable[str]) -> list[int]:
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        return sorted({i[0] for i in ids if len(i) == 1})

    def tokens(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        """Each text's token ids, tokenized on its own."""
        new = [t for t in dict.fromkeys(texts) if t not in self._tokens]
        if new:
            for text, ids in zip(new, self.tokenizer(new, add_special_tokens=False)["input_ids"], strict=True):
                self._tokens[text] = tuple(ids)
        return [self._tokens[t] for t in texts]


_VOCABULARIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def vocabulary(tokenizer) -> Vocabulary:
    """The cached :class:`Vocabulary` of ``tokenizer`` (kept while the tokenizer lives, like the model)."""
    if tokenizer not in _VOCABULARIES:
        _VOCABULARIES[tokenizer] = Vocabulary(tokenizer)
    return _VOCABULARIES[tokenizer]


def trie(forms: Iterable[str], paths: Iterable[Sequence[int]]) -> dict:
    """A token trie: node = {token id: child node, END: the form that ends here}."""
    root: dict = {}
    for form, path in zip(forms, paths, strict=True):
        node = root
        for token in path:
            node = node.setdefault(token, {})
        node.setdefault(END, form)
    return root


# --- the allowed words of one item ---------------------------------------------------------------


def _item_text(evidence: Evidence) -> str:
    """The evidence about the item itself, where the decoder takes its words: the title, year,
    card and the link's count. Narrower than what the checker accepts: the request says what the
    viewer wants and the history titles name other films ("The King and I" watched does not put a
    king in The African Queen, nor does its year become the pick's); the pre-filled start already
    names the history item."""
    count = str(evidence.co.count) if evidence.co is not None else ""
    return "\n".join([evidence.pieces()["title"], *evidence.card.values(), count])


def _claims_the_card_lacks(evidence: Evidence) -> set[str]:
    """Words of genre and award claims (:data:`agent.explain.check.ITEM_CLAIMS`) the item's own card
    does not support ("war" for a film without War, "oscar" without an award in the card)."""
    card = padded_words(" ".join(evidence.card.values()))
    lacking = set()
    for claim, support in ITEM_CLAIMS.items():
        if not any(padded_words(s).strip() in card for s in support):  # as the checker reads it
            lacking.update(words(claim))
    return lacking - allowed_words()


def _praise_words(evidence_text: str) -> set[str]:
    """For each empty-praise phrase the evidence does not hold, its first word that is not a
    connective: without it the phrase cannot be written ("captivated audiences", "a classic")."""
    said = " " + " ".join(words(evidence_text)) + " "
    out = set()
    for phrase in empty_praise():
        if phrase not in said:
            said_words = phrase.split()
            out.update([w for w in said_words if w not in allowed_words()][:1] or said_words[:1])  # "must see"
    return out


def word_forms(evidence: Evidence) -> set[str]:
    """The exact word forms the decoder may write for ``evidence``: each supported word lower-case
    and as the evidence writes it, the connectives lower-case (capitalised, they made runs of fake
    names: "The On My Own Shares"); minus unsupported claims and empty praise (module doc)."""
    text = _item_text(evidence)
    said = words(text)
    implied = [v for w in said for v in GENRE_IMPLIES.get(w, ())]
    banned = _claims_the_card_lacks(evidence) | _praise_words(text)
    supported = {w for w in said if w not in banned} | {w for w in implied if w not in banned | FILLER}
    written = {w for w in _FORM.findall(ascii_fold(text)) if all(p in supported for p in words(w))}
    vocabulary = allowed_words() - FILLER
    return supported | written | {w.lower() for w in written} | vocabulary


def once_only(word: str) -> bool:
    """Is ``word`` (lower case) one the sentence may say only once? Every content word and number
    (the tautology rule; "tagged 108" after "108 people"), and every longer connective too
    ("explores the interacted and interacted" passes the checker and says nothing); short
    function words repeat freely."""
    return word.isdigit() or (len(word) > 1 and (word not in allowed_words() or len(word) >= 4))


def untitled_words(text: str, evidence: Evidence) -> list[str]:
    """The words of ``text`` outside the titles, as the checker's repetition rules read them."""
    return without_titles(text, all_titles(evidence)).split()


# --- one row's constraint ------------------------------------------------------------------------


class WordConstraint:
    """The tokens one row may write next, given the tokens it wrote (see the module doc).

    ``said``: the words of the pre-filled start outside the titles; their once-only words count as
    said, and their last two start the word trigrams that may not repeat (the checker's loop rule).
    The row is followed token by token: the node of the word being written (None between words),
    the finished words, and whether the last token opened a bracket."""

    def __init__(self, vocab: Vocabulary, forms: Iterable[str], said: Sequence[str]):
        self.vocab = vocab
        self.forms = sorted(set(forms))
        self.sequence = list(said)
        self.said = len(self.sequence)
        self.node: dict | None = None
        self.opened = False
        self.seen = 0
        self._tries: dict[tuple, tuple[dict, dict]] = {}

    def allowed(self, new_tokens: Sequence[int]) -> list[int]:
        for token in new_tokens[self.seen:]:
            self._advance(token)
        self.seen = len(new_tokens)
        if self.node is not None:  # inside a word: continue it, or end it where a form ends
            ids = [t for t in self.node if t != END]
            return ids + (self._boundary(self.node[END]) if END in self.node else [])
        spaced, bare = self._roots(self.sequence)
        if self.opened:
            return list(bare)
        if len(self.sequence) == self.said:  # no word written yet: a word or punctuation, not the end
            return [*spaced, *(self.vocab.punctuation if not new_tokens else [])]
        return [*spaced, *self.vocab.ends]  # after punctuation: a word or the end

    def _boundary(self, form: str) -> list[int]:
        """After the whole word ``form``: the next word, punctuation or the end; only a word after
        one that cannot end a clause ("in which a.")."""
        spaced, _ = self._roots(self.sequence + words(form))
        if form.lower() in NO_END:
            return list(spaced)
        return [*spaced, *self.vocab.punctuation, *self.vocab.ends]

    def _advance(self, token: int) -> None:
        if self.node is not None and token in self.node:
            self.node = self.node[token]
            return
        if self.node is not None and END in self.node:  # the word ended where a form ends
            self.sequence += words(self.node[END])
        spaced, bare = self._roots(self.sequence)
        roots = bare if self.opened else spaced
        self.node = roots.get(token)
        self.opened = token in self.vocab.openers

    def _roots(self, sequence: list[str]) -> tuple[dict, dict]:
        """(spaced trie, bare trie) over the forms still usable after ``sequence``: not said yet (by
        stem, once-only words) and not closing a repeated word trigram. Cached per (said, loop)."""
        used = frozenset(stem(w) for w in sequence if once_only(w))
        loops = _loop_words(sequence)
        key = (used, loops)
        if key not in self._tries:
            forms = [f for f in self.forms if not any(once_only(w) and stem(w) in used for w in words(f))
                     and words(f)[0] not in loops]
            self._tries[key] = (trie(forms, self.vocab.tokens([" " + f for f in forms])),
                                trie(forms, self.vocab.tokens(forms)))
        return self._tries[key]


def _loop_words(sequence: Sequence[str]) -> frozenset[str]:
    """Words that would repeat a word trigram of ``sequence`` if written next."""
    if len(sequence) < 2:
        return frozenset(sequence[-1:])
    last = tuple(sequence[-2:])
    repeats = {sequence[i + 2] for i in range(len(sequence) - 2) if tuple(sequence[i:i + 2]) == last}
    return frozenset(repeats | {sequence[-1]})  # nor the same word twice in a row ("and and")


def batch_constraint(tokenizer, evidences: Sequence[Evidence],
                     prefixes: Sequence[str]) -> Callable[[int, Sequence[int]], list[int]]:
    """``allowed(i, new_tokens)`` for a batch: row i explains ``evidences[i]`` after ``prefixes[i]``
    (the pre-filled start, whose words count as said)."""
    vocab = vocabulary(tokenizer)
    rows = [WordConstraint(vocab, word_forms(e), untitled_words(p, e))
            for e, p in zip(evidences, prefixes, strict=True)]
    return lambda i, new_tokens: rows[i].allowed(new_tokens)
