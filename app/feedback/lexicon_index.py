"""The lexicon made ready for reading by `app.feedback.classify.read_comment`.

Every term is folded as a comment is folded (`fold`) and kept with its kind and weights: Latin-
script words and phrases by their words, Chinese terms in one pattern that finds the longest at
each position, emoji and emoticons by symbol. Built once, at import; a lexicon that contradicts
itself (one term, two meanings) refuses to load.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from app.core.hanzi import to_simplified
from app.feedback import lexicon, lexicon_modifiers

# Kinds of lexicon entry.
SCORED: Final = 0  # adds to the score: praise, criticism, a complaint, an expectation
NEGATOR: Final = 1
SHORT_NEGATOR: Final = 2  # "no": reaches only across clitics
INTENSIFIER: Final = 3
CONTRAST: Final = 4
BREAK: Final = 5  # punctuation: ends a negation's reach
BOOST_OR_TERM: Final = 6  # Chinese 好: "very" before a sentiment word, else "good"

# (kind, value, value when negated, cue). For a negator the value is what it scores when it
# negates nothing; for an intensifier, its multiplier; for a contrast, what it scores itself
# ("shame", 可惜). The cue names the entry's block in what `read_comment` reports.
Entry = tuple[int, float, float, str]
Word = tuple[Entry | None, tuple[int, ...]]  # the word alone, the sizes of phrases it starts

_NEGATED_CRITICISM: Final = -0.5  # "not bad" is half as good as "bad" is bad


def _sources(language: str) -> list[tuple[Callable[[float], Entry], Mapping[float, str]]]:
    """The blocks of a language's lexicon, each with what makes an entry of a weight."""

    def term(weight: float) -> Entry:  # praise or criticism: a negation turns it around
        cue = "praise" if weight > 0 else "criticism" if weight < 0 else ""
        negated = -weight if weight > 0 else weight * _NEGATED_CRITICISM
        return SCORED, weight, negated, cue

    def expected(weight: float) -> Entry:  # counts only when negated
        return SCORED, 0.0, weight, "unmet"

    def same_negated(kind: int, cue: str) -> Callable[[float], Entry]:
        return lambda weight: (kind, weight, weight, cue)

    return [
        (term, lexicon.TERMS[language]),
        (term, lexicon.GOOD_NEWS[language]),
        (same_negated(SCORED, "complaint"), lexicon.COMPLAINTS[language]),
        (same_negated(SCORED, "problem"), lexicon.PROBLEMS[language]),
        (same_negated(SCORED, "sarcasm"), lexicon.SARCASM[language]),
        (expected, lexicon.EXPECTED[language]),
        (same_negated(NEGATOR, "negation"), lexicon_modifiers.NEGATORS[language]),
        (same_negated(INTENSIFIER, "intensity"), lexicon_modifiers.INTENSIFIERS[language]),
        (same_negated(CONTRAST, "contrast"), lexicon_modifiers.CONTRASTS[language]),
    ]


_MARKS = re.compile("[\u0300-\u036f]+")
# Full-width punctuation, as Chinese is typed, and what NFKC makes of it. Replacing it first is
# the same fold, but lets NFKC find the text already normal instead of rebuilding it (5x faster).
_WIDE_PUNCTUATION: Final = tuple(
    (wide, unicodedata.normalize("NFKC", wide)) for wide in "，！？：；（）～％\u3000…"
)


def fold(text: str) -> str:
    """NFKC, casefold, no accents: "ＰÉＳＳＩＭＯ" is "pessimo"."""
    if text.isascii():
        return text.casefold()
    for wide, narrow in _WIDE_PUNCTUATION:
        text = text.replace(wide, narrow)
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    if unicodedata.is_normalized("NFD", folded):
        return to_simplified(folded)  # nothing to decompose: no accents (Chinese, say)
    # Decompose, then drop the combining marks. Han characters do not decompose.
    return to_simplified(_MARKS.sub("", unicodedata.normalize("NFD", folded)))


# Words (in folded text, Latin words are ASCII) and the punctuation that ends a clause. The
# sparse form finds the same, faster where few characters are Latin (Chinese).
LATIN_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[.!?;:,\n]")
SPARSE_LATIN_TOKEN = re.compile(r"[a-z.!?;:,\n](?:(?<=[a-z])[a-z]*(?:'[a-z]+)*)?")
LATIN_WORD = re.compile("[a-z]{2}")  # a single letter is no word of the lexicon
CJK_CHAR = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
CJK_BREAKS: Final = frozenset(".!?;:,\n。、")


def _terms(blocks: Mapping[float, str]) -> Iterator[tuple[str, float]]:
    for weight, terms in blocks.items():
        for term in terms.split(","):
            if term.strip():  # a phrase may be wrapped across lines: one space between words
                yield fold(" ".join(term.split())), weight


def _add(table: dict[str, Entry], key: str, entry: Entry) -> None:
    known = table.setdefault(key, entry)
    if known != entry:
        raise ValueError(f"lexicon: {key!r} is listed both as {known} and as {entry}")


def _build_latin() -> tuple[dict[str, Word], dict[str, Entry], frozenset[str]]:
    """Words, phrases (by their words joined with spaces) and the bridges of a short negator."""
    table: dict[str, Entry] = {}
    for language in ("en", "pt", "es"):
        for meaning, blocks in _sources(language):
            for term, weight in _terms(blocks):
                # Stored as the words the tokenizer makes of it: "rip-off" is "rip off".
                _add(table, " ".join(LATIN_TOKEN.findall(term)), meaning(weight))
    for term, weight in _terms(lexicon_modifiers.SHORT_NEGATORS):
        _add(table, term, (SHORT_NEGATOR, weight, weight, "negation"))
    for mark in ".!?;:,\n":
        _add(table, mark, (BREAK, 0.0, 0.0, ""))
    phrases = {key: entry for key, entry in table.items() if " " in key}
    sizes: dict[str, set[int]] = {}
    for phrase in phrases:
        head, *rest = phrase.split(" ")
        sizes.setdefault(head, set()).add(1 + len(rest))
    words: dict[str, Word] = {
        word: (table.get(word), tuple(sorted(sizes.get(word, ()), reverse=True)))
        for word in {key for key in table if " " not in key} | sizes.keys()
    }
    bridges = frozenset(term for term, _ in _terms({0.0: lexicon_modifiers.SHORT_NEGATOR_BRIDGES}))
    return words, phrases, bridges


LATIN_WORDS, LATIN_PHRASES, BRIDGES = _build_latin()
# Words that open a contrast; "mas" too, which is no contrast inside a clause (Spanish "más").
LATIN_CONTRASTS: Final = frozenset(
    {"mas"} | {word for word, (entry, _) in LATIN_WORDS.items() if entry and entry[0] == CONTRAST}
)


def _build_cjk() -> tuple[dict[str, Entry], dict[str, float], re.Pattern[str]]:
    table: dict[str, Entry] = {}
    boosts: dict[str, float] = {}  # the multiplier of each BOOST_OR_TERM
    for meaning, blocks in _sources("zh"):
        for term, weight in _terms(blocks):
            entry = meaning(weight)
            known = table.get(term)
            if entry[0] == INTENSIFIER and known is not None and known[0] == SCORED:
                table[term] = (BOOST_OR_TERM, known[1], known[2], known[3])
                boosts[term] = weight
            else:
                _add(table, term, entry)
    # A capturing group, so that split() hands back the terms between the gaps.
    return table, boosts, re.compile("(" + _longest_of(table) + ")")


_Trie = dict[str, "_Trie"]


def _longest_of(terms: Iterable[str]) -> str:
    """A pattern matching the longest of `terms` that starts at a position, so that 不满意 wins
    over 不 and 满意. It is a trie: `re` tries the branches of an alternation one by one, and 600
    terms in a row would cost that many comparisons at every character."""
    trie: _Trie = {}
    for term in terms:
        node = trie
        for char in term:
            node = node.setdefault(char, {})
        node[""] = {}  # a term ends here

    def pattern(node: _Trie) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in node.items() if char]
        if not branches:
            return ""
        if "" in node:  # greedy: the longer terms first, this one if none of them matches
            return "(?:" + "|".join(branches) + ")?"
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return pattern(trie)


CJK, CJK_BOOSTS, CJK_TERMS = _build_cjk()
CJK_CONTRASTS: Final = tuple(term for term, entry in CJK.items() if entry[0] == CONTRAST)


# Where the emoji of the lexicon live. One character class of ranges: a class listing characters
# beyond U+FFFF one by one costs `re` a comparison per listed character at every position.
_EMOJI_RANGES: Final = "\u2600-\u27bf\u2b00-\u2bff\U0001f300-\U0001faff"


def _build_emoji() -> tuple[dict[str, float], re.Pattern[str], re.Pattern[str]]:
    weights: dict[str, float] = {}
    emoticons: list[str] = []
    emoji = re.compile(f"[{_EMOJI_RANGES}]")
    for symbol, weight in _terms(lexicon.EMOJI):
        symbol = symbol.replace("\ufe0f", "")  # ❤️ is ❤ and a presentation selector
        weights[symbol] = weight
        if symbol.isascii():
            if symbol[0] not in ":;<=":
                raise ValueError(f"lexicon: emoticon {symbol!r} must start with : ; < or =")
            # An emoticon ending in a letter or digit must end there: ":d" but not ":done".
            end = "(?![a-z0-9])" if symbol[-1].isalnum() else ""
            emoticons.append(re.escape(symbol) + end)
        elif not emoji.fullmatch(symbol):
            raise ValueError(f"lexicon: {symbol!r} is outside the emoji ranges")
    emoticons.sort(key=len, reverse=True)
    return weights, emoji, re.compile("|".join(emoticons))


EMOJI_WEIGHTS, EMOJI, EMOTICON = _build_emoji()
