"""Comments read in four languages: the labelled sets, both Chinese scripts, and the cues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.hanzi import to_simplified
from app.core.vocabulary import Sentiment
from app.feedback.classify import read_comment

DATA = Path(__file__).parent.parent / "data" / "sentiment"
TAGS = ("en", "zh-Hans", "zh-Hant", "pt", "es")


def labelled(tag: str) -> list[dict[str, str]]:
    lines = (DATA / f"{tag}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("tag", TAGS)
def test_each_language_set_is_large_and_labelled_both_ways(tag: str) -> None:
    rows = labelled(tag)
    assert len(rows) >= 300
    assert {row["label"] for row in rows} == {"negative", "not_negative"}
    assert {row["split"] for row in rows} == {"dev", "held_out"}
    assert len({row["text"] for row in rows}) == len(rows)


@pytest.mark.parametrize("tag", TAGS)
def test_negative_or_not_is_right_nine_times_in_ten_in_each_language(tag: str) -> None:
    rows = labelled(tag)
    right = sum(
        (read_comment(row["text"]).sentiment is Sentiment.NEGATIVE) == (row["label"] == "negative")
        for row in rows
    )
    assert right / len(rows) >= 0.90, f"{tag}: {right}/{len(rows)}"


def test_traditional_chinese_reads_as_its_simplified_form() -> None:
    for row in labelled("zh-Hant"):
        assert read_comment(row["text"]) == read_comment(to_simplified(row["text"]))


def test_one_simplified_entry_covers_both_scripts() -> None:
    assert (
        read_comment("客服態度差").cues == read_comment("客服态度差").cues == ["criticism:态度差"]
    )


@pytest.mark.parametrize(
    ("comment", "sentiment", "cues"),
    [
        ("Not good at all", Sentiment.NEGATIVE, ["negated praise:not good"]),
        ("Very slow delivery", Sentiment.NEGATIVE, ["intensity:very", "criticism:slow"]),
        (
            "Great product but the delivery was slow",
            Sentiment.NEGATIVE,
            ["praise:great", "contrast:but", "criticism:slow"],
        ),
        (
            "Great, another update and now the search doesn't work.",
            Sentiment.NEGATIVE,
            ["sarcasm:great", "negated unmet:doesn't work"],
        ),
        ("Thanks for nothing.", Sentiment.NEGATIVE, ["sarcasm:thanks for nothing"]),
        ("Nobody came.", Sentiment.NEGATIVE, ["problem:nobody came"]),
        ("Nobody called.", Sentiment.NEGATIVE, ["negation:nobody"]),
        ("No complaints", Sentiment.POSITIVE, ["praise:no complaints"]),
        ("Não chegou nada", Sentiment.NEGATIVE, ["negated unmet:nao chegou", "negation:nada"]),
        (
            "Bom, mas caro demais",
            Sentiment.NEUTRAL,
            ["praise:bom", "criticism:caro", "problem:demais"],
        ),
        ("Bueno pero caro", Sentiment.NEUTRAL, ["praise:bueno", "contrast:pero", "criticism:caro"]),
        ("No se actualiza desde el martes", Sentiment.NEGATIVE, ["negation:no"]),
        (
            "东西不错，但是物流太慢",
            Sentiment.NEGATIVE,
            ["praise:不错", "contrast:但是", "intensity:太", "criticism:慢"],
        ),
        ("不過東西還行", Sentiment.NEUTRAL, ["contrast:不过", "praise:还行"]),
        ("呵呵，又发错货", Sentiment.NEGATIVE, ["sarcasm:呵呵", "problem:又", "criticism:发错"]),
        ("Where is my refund?", Sentiment.NEGATIVE, ["complaint:refund", "question:?"]),
        ("Where can I find the invoice?", Sentiment.NEUTRAL, ["question:?"]),
        ("", Sentiment.NEUTRAL, []),
    ],
)
def test_the_cues_say_why(comment: str, sentiment: Sentiment, cues: list[str]) -> None:
    reading = read_comment(comment)
    assert (reading.sentiment, reading.cues) == (sentiment, cues)
