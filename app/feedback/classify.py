"""The category and sentiment of feedback (SPEC §2).

A score gives its category by the thresholds in `Settings`, and the category gives the sentiment.
A comment without a score gets its sentiment from `read_comment`, a weighted lexicon
(`app/feedback/lexicon.py`) for English, Portuguese, Spanish and Chinese (simplified and
traditional), plus emoji, which also says which entries decided it (the cues, stored with the
item). A lexicon rather than a model because this runs on the ingest hot path of a service that
must start on a fresh machine: no model to download, no GPU, the same answer for the same text
on every replica, tens of microseconds for a comment, and word lists a support lead can read and
extend. On the labelled sets in `tests/data/sentiment/` it beats what packages ship for each
language (VADER, TextBlob, AFINN, LeIA, SnowNLP, sentiment-analysis-spanish): `bench.sentiment`.

How a comment is scored:
- Folding: NFKC and casefold (full-width letters, capitals), then accents are stripped, so
  "PÉSSIMO" and "pessimo" are one word, and traditional Chinese becomes simplified (OpenCC,
  `app.core.hanzi`), so 態度差 is 态度差 and the lexicon lists each Chinese term once.
- Latin-script text is cut into words; the longest lexicon phrase starting at each word wins,
  so "boa tarde" (good afternoon) is not "good" plus "late".
- Chinese has no spaces: the lexicon terms are found as substrings, longest first.
- A negator ("not", "não", "nunca", 不, 没有) turns the next sentiment word within three words
  (Chinese: two characters) around: praise becomes criticism of the same weight, criticism
  becomes praise of half its weight, so "not good" is negative and "not bad at all" mildly
  positive. A negator with nothing to turn around is mild criticism itself: in feedback,
  "nobody called", "it hasn't updated", 没人接 are complaints. "no" reaches only across
  clitics ("no me gustó") and counts alone only behind one ("no se actualiza"): in Portuguese it
  also means "in the" ("no app foi ótimo"). Complaint topics (refund, 退款, reembolso, charged
  twice) and problems told without a negative word ("stopped working", "de novo", 掉色) stay
  negative whatever negates them; things a customer expected ("arrived", "chegou", 收到) count
  only when negated ("never arrived", "não chegou", 没收到); good news told through a negation
  ("no complaints", "can't fault", 无可挑剔) is a phrase of its own.
- An intensifier ("very", "muito", 非常) multiplies the word after it; at a contrast ("but",
  "pero", 但是) what came before counts half and the rest half again: "good but slow" is a
  complaint, "slow but good" praise. "shame", "pena que", 可惜 are contrasts that regret.
- Sarcasm: listed phrases ("thanks for nothing", 呵呵), and a short opening clause of praise
  followed by a complaint ("Great, another late delivery", 太好了，app 把…全删了), whose praise
  then counts against. An opening followed by "but" is no sarcasm ("Bom, mas caro").
- A question mark is mild criticism: alone it decides nothing, beside a complaint it tips it.
- The sum decides: at least +1 positive, at most -1 negative, otherwise (no evidence, or praise
  and criticism that cancel out) neutral.

Its limits are a lexicon's: sarcasm only as above (quoted praise, "a really 'premium' service",
goes unread), no words it does not list, misspellings only where listed, a negation reaching at
most three words, complaints made of facts alone ("ordered 6, received 4") unread, and other
languages only through emoji. Portuguese "mas" (but) weighs no clause because, folded, it is
also Spanish "más" (more): measured, making it a contrast cost Spanish more than it gained
Portuguese. It only keeps a praise opening from reading as sarcasm.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final, NamedTuple

from app.core.config import Settings
from app.core.hanzi import to_simplified
from app.core.vocabulary import Category, Metric, Sentiment
from app.feedback import lexicon


def categorize(metric: Metric, score: int, settings: Settings) -> Category:
    """The category a score falls in, by the thresholds in `settings`."""
    if metric is Metric.NPS:
        if score <= settings.nps_detractor_max:
            return Category.DETRACTOR
        if score <= settings.nps_passive_max:
            return Category.PASSIVE
        return Category.PROMOTER
    if metric is Metric.CSAT:
        negative_max, neutral_max = settings.csat_negative_max, settings.csat_neutral_max
    elif metric is Metric.STAR:
        negative_max, neutral_max = settings.star_negative_max, settings.star_neutral_max
    else:  # CES: agreement with "it was easy", so a high score is good as for the others
        negative_max, neutral_max = settings.ces_negative_max, settings.ces_neutral_max
    if score <= negative_max:
        return Category.NEGATIVE
    if score <= neutral_max:
        return Category.NEUTRAL
    return Category.POSITIVE


_SENTIMENT_OF: Final[Mapping[Category, Sentiment]] = {
    Category.DETRACTOR: Sentiment.NEGATIVE,
    Category.NEGATIVE: Sentiment.NEGATIVE,
    Category.PASSIVE: Sentiment.NEUTRAL,
    Category.NEUTRAL: Sentiment.NEUTRAL,
    Category.PROMOTER: Sentiment.POSITIVE,
    Category.POSITIVE: Sentiment.POSITIVE,
}


def sentiment_of(category: Category) -> Sentiment:
    return _SENTIMENT_OF[category]


# Kinds of lexicon entry.
_SCORED: Final = 0  # adds to the score: praise, criticism, a complaint, an expectation
_NEGATOR: Final = 1
_SHORT_NEGATOR: Final = 2  # "no": reaches only across clitics
_INTENSIFIER: Final = 3
_CONTRAST: Final = 4
_BREAK: Final = 5  # punctuation: ends a negation's reach
_BOOST_OR_TERM: Final = 6  # Chinese 好: "very" before a sentiment word, else "good"

# (kind, value, value when negated, cue). For a negator the value is what it scores when it
# negates nothing; for an intensifier, its multiplier; for a contrast, what it scores itself
# ("shame", 可惜). The cue names the entry's block in what `read_comment` reports.
_Entry = tuple[int, float, float, str]
_Word = tuple[_Entry | None, tuple[int, ...]]  # the word alone, the sizes of phrases it starts

_POSITIVE_FROM: Final = 1.0
_NEGATIVE_FROM: Final = -1.0
_NEGATED_CRITICISM: Final = -0.5  # "not bad" is half as good as "bad" is bad
_CONTRAST_EMPHASIS: Final = 1.5  # the clause after "but" counts half again...
_BEFORE_CONTRAST: Final = 0.5  # ...and the one before it half
_QUESTION: Final = -0.5  # a customer asking a question in feedback is mostly asking why
_LATIN_REACH: Final = 3  # words a negation reaches across
_CJK_REACH: Final = 2  # characters between a Chinese negator or intensifier and its word
_MAX_CUES: Final = 12
# A sarcastic opening is a short clause of praise before a complaint ("Great, another update and
# now the search doesn't work"): at most this many words (Latin) or characters (Chinese).
_OPENING_WORDS: Final = 3
_OPENING_CHARS: Final = 4


def _sources(language: str) -> list[tuple[Callable[[float], _Entry], Mapping[float, str]]]:
    """The blocks of a language's lexicon, each with what makes an entry of a weight."""

    def term(weight: float) -> _Entry:  # praise or criticism: a negation turns it around
        cue = "praise" if weight > 0 else "criticism" if weight < 0 else ""
        negated = -weight if weight > 0 else weight * _NEGATED_CRITICISM
        return _SCORED, weight, negated, cue

    def expected(weight: float) -> _Entry:  # counts only when negated
        return _SCORED, 0.0, weight, "unmet"

    def same_negated(kind: int, cue: str) -> Callable[[float], _Entry]:
        return lambda weight: (kind, weight, weight, cue)

    return [
        (term, lexicon.TERMS[language]),
        (term, lexicon.GOOD_NEWS[language]),
        (same_negated(_SCORED, "complaint"), lexicon.COMPLAINTS[language]),
        (same_negated(_SCORED, "problem"), lexicon.PROBLEMS[language]),
        (same_negated(_SCORED, "sarcasm"), lexicon.SARCASM[language]),
        (expected, lexicon.EXPECTED[language]),
        (same_negated(_NEGATOR, "negation"), lexicon.NEGATORS[language]),
        (same_negated(_INTENSIFIER, "intensity"), lexicon.INTENSIFIERS[language]),
        (same_negated(_CONTRAST, "contrast"), lexicon.CONTRASTS[language]),
    ]


_MARKS = re.compile("[\u0300-\u036f]+")
# Full-width punctuation, as Chinese is typed, and what NFKC makes of it. Replacing it first is
# the same fold, but lets NFKC find the text already normal instead of rebuilding it (5x faster).
_WIDE_PUNCTUATION: Final = tuple(
    (wide, unicodedata.normalize("NFKC", wide)) for wide in "，！？：；（）～％\u3000…"
)


def _fold(text: str) -> str:
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
_LATIN_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[.!?;:,\n]")
_SPARSE_LATIN_TOKEN = re.compile(r"[a-z.!?;:,\n](?:(?<=[a-z])[a-z]*(?:'[a-z]+)*)?")
_LATIN_WORD = re.compile("[a-z]{2}")  # a single letter is no word of the lexicon
_CJK_CHAR = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
_CJK_BREAKS: Final = frozenset(".!?;:,\n。、")


def _terms(blocks: Mapping[float, str]) -> Iterator[tuple[str, float]]:
    for weight, terms in blocks.items():
        for term in terms.split(","):
            if term.strip():  # a phrase may be wrapped across lines: one space between words
                yield _fold(" ".join(term.split())), weight


def _add(table: dict[str, _Entry], key: str, entry: _Entry) -> None:
    known = table.setdefault(key, entry)
    if known != entry:
        raise ValueError(f"lexicon: {key!r} is listed both as {known} and as {entry}")


def _build_latin() -> tuple[dict[str, _Word], dict[str, _Entry], frozenset[str]]:
    """Words, phrases (by their words joined with spaces) and the bridges of a short negator."""
    table: dict[str, _Entry] = {}
    for language in ("en", "pt", "es"):
        for meaning, blocks in _sources(language):
            for term, weight in _terms(blocks):
                # Stored as the words the tokenizer makes of it: "rip-off" is "rip off".
                _add(table, " ".join(_LATIN_TOKEN.findall(term)), meaning(weight))
    for term, weight in _terms(lexicon.SHORT_NEGATORS):
        _add(table, term, (_SHORT_NEGATOR, weight, weight, "negation"))
    for mark in ".!?;:,\n":
        _add(table, mark, (_BREAK, 0.0, 0.0, ""))
    phrases = {key: entry for key, entry in table.items() if " " in key}
    sizes: dict[str, set[int]] = {}
    for phrase in phrases:
        head, *rest = phrase.split(" ")
        sizes.setdefault(head, set()).add(1 + len(rest))
    words: dict[str, _Word] = {
        word: (table.get(word), tuple(sorted(sizes.get(word, ()), reverse=True)))
        for word in {key for key in table if " " not in key} | sizes.keys()
    }
    bridges = frozenset(term for term, _ in _terms({0.0: lexicon.SHORT_NEGATOR_BRIDGES}))
    return words, phrases, bridges


_LATIN_WORDS, _LATIN_PHRASES, _BRIDGES = _build_latin()
# Words that open a contrast; "mas" too, which is no contrast inside a clause (Spanish "más").
_LATIN_CONTRASTS: Final = frozenset(
    {"mas"} | {word for word, (entry, _) in _LATIN_WORDS.items() if entry and entry[0] == _CONTRAST}
)


def _build_cjk() -> tuple[dict[str, _Entry], dict[str, float], re.Pattern[str]]:
    table: dict[str, _Entry] = {}
    boosts: dict[str, float] = {}  # the multiplier of each _BOOST_OR_TERM
    for meaning, blocks in _sources("zh"):
        for term, weight in _terms(blocks):
            entry = meaning(weight)
            known = table.get(term)
            if entry[0] == _INTENSIFIER and known is not None and known[0] == _SCORED:
                table[term] = (_BOOST_OR_TERM, known[1], known[2], known[3])
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


_CJK, _CJK_BOOSTS, _CJK_TERMS = _build_cjk()
_CJK_CONTRASTS: Final = tuple(term for term, entry in _CJK.items() if entry[0] == _CONTRAST)


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


_EMOJI_WEIGHTS, _EMOJI, _EMOTICON = _build_emoji()


class Reading(NamedTuple):
    """What a comment says: its sentiment, and the lexicon entries that decided it."""

    sentiment: Sentiment
    cues: list[str]


def classify_text(text: str) -> Sentiment:
    """The sentiment of a comment: the sum of its lexicon weights, neutral between -1 and +1."""
    return read_comment(text).sentiment


def read_comment(text: str) -> Reading:
    """The sentiment of a comment and its cues, `kind:term` in the order they were met:
    `praise:fast`, `negated praise:good`, `criticism:late`, `complaint:refund`, `unmet:arrived`
    (an expectation negated), `negation:can't`, `intensity:very`, `contrast:but`,
    `sarcasm:great`, `question:?`, `emoji:😡`."""
    folded = _fold(text)
    cues: list[str] = []
    score = _score(folded, cues)
    if "?" in folded:
        score += _QUESTION
        cues.append("question:?")
    if ":" in folded or ";" in folded or "<" in folded or "=" in folded:
        for symbol in _EMOTICON.findall(folded):
            score += _EMOJI_WEIGHTS[symbol]
            cues.append(f"emoji:{symbol}")
    if score >= _POSITIVE_FROM:
        sentiment = Sentiment.POSITIVE
    elif score <= _NEGATIVE_FROM:
        sentiment = Sentiment.NEGATIVE
    else:
        sentiment = Sentiment.NEUTRAL
    return Reading(sentiment, list(dict.fromkeys(cues))[:_MAX_CUES])


_OPENING_END = re.compile("[,!.;:\n]")


def _score(folded: str, cues: list[str]) -> float:
    """The weights of a folded comment, with a sarcastic opening turned around: a short clause
    of praise ("great,", "que beleza,", 太好了) before a complaint is said through gritted teeth."""
    end = _OPENING_END.search(folded)
    if end is not None and end.end() < len(folded):
        opening = folded[: end.start()]
        short = (
            len(opening) <= _OPENING_CHARS
            if _CJK_CHAR.search(opening)
            else opening.count(" ") < _OPENING_WORDS
        )
        if short:
            opening_cues: list[str] = []
            opening_score = _clause_score(opening, opening_cues)
            if opening_score > 0:
                after = folded[end.end() :]
                rest = _clause_score(after, cues)
                if rest < 0 and not _opens_contrast(after):
                    cues[:0] = [f"sarcasm:{opening.strip()}"]
                    return rest - opening_score
                cues[:0] = opening_cues
                return opening_score + rest
    return _clause_score(folded, cues)


def _opens_contrast(clause: str) -> bool:
    """Whether a clause starts with "but" (or Portuguese "mas"): "Bom, mas caro" is praise
    weighed against a price, not sarcasm."""
    clause = clause.lstrip()
    first = _LATIN_TOKEN.match(clause)
    if first is not None:
        return first.group() in _LATIN_CONTRASTS
    return clause.startswith(_CJK_CONTRASTS)


def _clause_score(folded: str, cues: list[str]) -> float:
    if folded.isascii():
        return _latin_score(_LATIN_TOKEN.findall(folded), cues)
    if _CJK_CHAR.search(folded):
        score = _cjk_score(folded, cues)
        if _LATIN_WORD.search(folded):
            score += _latin_score(_SPARSE_LATIN_TOKEN.findall(folded), cues)
    else:
        score = _latin_score(_LATIN_TOKEN.findall(folded), cues)
    for symbol in _EMOJI.findall(folded):
        weight = _EMOJI_WEIGHTS.get(symbol)
        if weight is not None:
            score += weight
            cues.append(f"emoji:{symbol}")
    return score


def _scored_cue(cue: str, term: str, negated: bool) -> str:
    return f"negated {cue}:{term}" if negated else f"{cue}:{term}"


def _latin_score(tokens: list[str], cues: list[str]) -> float:
    count = len(tokens)
    score = 0.0
    reach = 0  # words a pending negation still reaches; 0: none pending
    short = False  # the pending negation is "no", which reaches only across clitics
    unused = 0.0  # what the pending negator scores if it negates nothing ("can't log in")
    negator = ""
    bridged = False  # a short negation reached across a clitic: it is Spanish "no", not "in the"
    boost = 1.0
    booster = ""
    emphasis = 1.0
    skip = 0  # words of a phrase already counted
    for i, token in enumerate(tokens):
        if skip:
            skip -= 1
            continue
        word = _LATIN_WORDS.get(token)
        term = token
        if word is None:
            entry = None
        else:
            entry, sizes = word
            for size in sizes:  # the longest phrase starting here, if any
                if i + size <= count:
                    phrase = " ".join(tokens[i : i + size])
                    found = _LATIN_PHRASES.get(phrase)
                    if found is not None:
                        entry, skip, term = found, size - 1, phrase
                        break
        if entry is None:
            boost = 1.0
            if reach and short and token in _BRIDGES:
                bridged = True
            elif reach and (short or reach == 1):
                score += _unused(unused if bridged or not short else 0.0, negator, cues) * emphasis
                reach = 0
            elif reach:
                reach -= 1
            continue
        kind, value, negated, cue = entry
        if kind == _SCORED:
            weight = (negated if reach else value) * boost
            if weight:
                if boost != 1.0:
                    cues.append(f"intensity:{booster}")
                cues.append(_scored_cue(cue, f"{negator} {term}" if reach else term, reach > 0))
            score += weight * emphasis
            reach, boost = 0, 1.0
        elif kind in (_NEGATOR, _SHORT_NEGATOR):
            if reach:
                score += _unused(unused if bridged or not short else 0.0, negator, cues) * emphasis
            reach, short, unused, negator = _LATIN_REACH, kind == _SHORT_NEGATOR, value, term
            bridged = False
        elif kind == _INTENSIFIER:
            boost *= value
            booster = term
        else:  # a contrast or a break ends the clause
            if reach:
                score += _unused(unused if bridged or not short else 0.0, negator, cues) * emphasis
            reach, boost = 0, 1.0
            if kind == _CONTRAST:
                cues.append(f"contrast:{term}")
                score = score * _BEFORE_CONTRAST + value
                emphasis = _CONTRAST_EMPHASIS
    if reach:
        score += _unused(unused if bridged or not short else 0.0, negator, cues) * emphasis
    return score


def _unused(value: float, negator: str, cues: list[str]) -> float:
    """What a negator that negated nothing scores: "nobody came", 没人来."""
    if value:
        cues.append(f"negation:{negator}")
    return value


def _cjk_score(folded: str, cues: list[str]) -> float:
    # [gap, term, gap, term, ..., gap]: the gaps tell whether a negator touches its term.
    parts = _CJK_TERMS.split(folded)
    last = len(parts) - 1
    score = 0.0
    negator = ""  # the pending negator, "" when none
    unused = 0.0
    boost = 1.0
    booster = ""
    emphasis = 1.0
    for k in range(1, last, 2):
        gap = parts[k - 1]
        if gap and (negator or boost != 1.0) and (len(gap) > _CJK_REACH or _breaks(gap)):
            if negator:
                score += _unused(unused, negator, cues) * emphasis
            negator, boost = "", 1.0
        term = parts[k]
        kind, value, value_negated, cue = _CJK[term]
        if kind == _BOOST_OR_TERM:
            # 好慢 is "very slow", 很好 is "very good", 好 alone is "good".
            following = _CJK[parts[k + 2]] if k + 2 < last and not parts[k + 1] else None
            if following is not None and following[0] == _SCORED:
                kind, value = _INTENSIFIER, _CJK_BOOSTS[term]
            else:
                kind = _SCORED
        if kind == _SCORED:
            weight = (value_negated if negator else value) * boost
            if weight:
                if boost != 1.0:
                    cues.append(f"intensity:{booster}")
                cues.append(_scored_cue(cue, negator + term, bool(negator)))
            score += weight * emphasis
            negator, boost = "", 1.0
        elif kind == _NEGATOR:
            if negator:  # 不是不好: two negations cancel
                negator = ""
            else:
                negator, unused = term, value
        elif kind == _INTENSIFIER:
            boost *= value
            booster = term
        else:
            if negator:
                score += _unused(unused, negator, cues) * emphasis
            negator, boost = "", 1.0
            cues.append(f"contrast:{term}")
            score = score * _BEFORE_CONTRAST + value
            emphasis = _CONTRAST_EMPHASIS
    if negator:
        score += _unused(unused, negator, cues) * emphasis
    return score


def _breaks(gap: str) -> bool:
    return any(char in _CJK_BREAKS for char in gap)
