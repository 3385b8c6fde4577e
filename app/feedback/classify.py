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
from collections.abc import Mapping
from typing import Final, NamedTuple

from app.core.config import Settings
from app.core.vocabulary import Category, Metric, Sentiment
from app.feedback.lexicon_index import (
    BOOST_OR_TERM,
    BRIDGES,
    CJK,
    CJK_BOOSTS,
    CJK_BREAKS,
    CJK_CHAR,
    CJK_CONTRASTS,
    CJK_TERMS,
    CONTRAST,
    EMOJI,
    EMOJI_WEIGHTS,
    EMOTICON,
    INTENSIFIER,
    LATIN_CONTRASTS,
    LATIN_PHRASES,
    LATIN_TOKEN,
    LATIN_WORD,
    LATIN_WORDS,
    NEGATOR,
    SCORED,
    SHORT_NEGATOR,
    SPARSE_LATIN_TOKEN,
    fold,
)


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


_POSITIVE_FROM: Final = 1.0
_NEGATIVE_FROM: Final = -1.0
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
    folded = fold(text)
    cues: list[str] = []
    score = _score(folded, cues)
    if "?" in folded:
        score += _QUESTION
        cues.append("question:?")
    if ":" in folded or ";" in folded or "<" in folded or "=" in folded:
        for symbol in EMOTICON.findall(folded):
            score += EMOJI_WEIGHTS[symbol]
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
            if CJK_CHAR.search(opening)
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
    first = LATIN_TOKEN.match(clause)
    if first is not None:
        return first.group() in LATIN_CONTRASTS
    return clause.startswith(CJK_CONTRASTS)


def _clause_score(folded: str, cues: list[str]) -> float:
    if folded.isascii():
        return _latin_score(LATIN_TOKEN.findall(folded), cues)
    if CJK_CHAR.search(folded):
        score = _cjk_score(folded, cues)
        if LATIN_WORD.search(folded):
            score += _latin_score(SPARSE_LATIN_TOKEN.findall(folded), cues)
    else:
        score = _latin_score(LATIN_TOKEN.findall(folded), cues)
    for symbol in EMOJI.findall(folded):
        weight = EMOJI_WEIGHTS.get(symbol)
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
        word = LATIN_WORDS.get(token)
        term = token
        if word is None:
            entry = None
        else:
            entry, sizes = word
            for size in sizes:  # the longest phrase starting here, if any
                if i + size <= count:
                    phrase = " ".join(tokens[i : i + size])
                    found = LATIN_PHRASES.get(phrase)
                    if found is not None:
                        entry, skip, term = found, size - 1, phrase
                        break
        if entry is None:
            boost = 1.0
            if reach and short and token in BRIDGES:
                bridged = True
            elif reach and (short or reach == 1):
                score += _unused(unused if bridged or not short else 0.0, negator, cues) * emphasis
                reach = 0
            elif reach:
                reach -= 1
            continue
        kind, value, negated, cue = entry
        if kind == SCORED:
            weight = (negated if reach else value) * boost
            if weight:
                if boost != 1.0:
                    cues.append(f"intensity:{booster}")
                cues.append(_scored_cue(cue, f"{negator} {term}" if reach else term, reach > 0))
            score += weight * emphasis
            reach, boost = 0, 1.0
        elif kind in (NEGATOR, SHORT_NEGATOR):
            if reach:
                score += _unused(unused if bridged or not short else 0.0, negator, cues) * emphasis
            reach, short, unused, negator = _LATIN_REACH, kind == SHORT_NEGATOR, value, term
            bridged = False
        elif kind == INTENSIFIER:
            boost *= value
            booster = term
        else:  # a contrast or a break ends the clause
            if reach:
                score += _unused(unused if bridged or not short else 0.0, negator, cues) * emphasis
            reach, boost = 0, 1.0
            if kind == CONTRAST:
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
    parts = CJK_TERMS.split(folded)
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
        kind, value, value_negated, cue = CJK[term]
        if kind == BOOST_OR_TERM:
            # 好慢 is "very slow", 很好 is "very good", 好 alone is "good".
            following = CJK[parts[k + 2]] if k + 2 < last and not parts[k + 1] else None
            if following is not None and following[0] == SCORED:
                kind, value = INTENSIFIER, CJK_BOOSTS[term]
            else:
                kind = SCORED
        if kind == SCORED:
            weight = (value_negated if negator else value) * boost
            if weight:
                if boost != 1.0:
                    cues.append(f"intensity:{booster}")
                cues.append(_scored_cue(cue, negator + term, bool(negator)))
            score += weight * emphasis
            negator, boost = "", 1.0
        elif kind == NEGATOR:
            if negator:  # 不是不好: two negations cancel
                negator = ""
            else:
                negator, unused = term, value
        elif kind == INTENSIFIER:
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
    return any(char in CJK_BREAKS for char in gap)
