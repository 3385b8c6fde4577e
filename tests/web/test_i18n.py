"""The page's and the widget's languages: every text in each of them, and how one is chosen."""

from __future__ import annotations

import re

import pytest

from app.web.i18n import LANGUAGES, TEXT, WIDGET_TEXT, language_of, negotiate


@pytest.mark.parametrize("texts", [TEXT, WIDGET_TEXT], ids=["page", "widget"])
def test_every_language_has_every_text_with_the_same_placeholders(
    texts: dict[str, dict[str, str]],
) -> None:
    assert set(texts) == set(LANGUAGES)
    english = texts["en"]
    for language in LANGUAGES:
        assert set(texts[language]) == set(english), language
        for key, text in texts[language].items():
            assert text.strip(), (language, key)
            assert set(re.findall(r"{\w+}", text)) == set(re.findall(r"{\w+}", english[key]))


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("zh", "zh-Hans"),
        ("zh-CN", "zh-Hans"),
        ("zh_SG", "zh-Hans"),
        ("zh-Hans-HK", "zh-Hant"),
        ("zh-TW", "zh-Hant"),
        ("zh-HK", "zh-Hant"),
        ("zh-Hant", "zh-Hant"),
        ("pt-BR", "pt"),
        ("PT-pt", "pt"),
        ("es-419", "es"),
        ("fr-FR", None),
        ("", None),
        (None, None),
    ],
)
def test_a_locale_maps_to_one_of_the_page_languages(tag: str | None, language: str | None) -> None:
    assert language_of(tag) == language


def test_the_case_locale_comes_first_then_the_browser_by_weight_then_english() -> None:
    assert negotiate("pt-BR", "es") == "pt"
    assert negotiate(None, "fr;q=1, es;q=0.5, zh-TW;q=0.9") == "zh-Hant"
    assert negotiate("fr", "de, *;q=0.1") == "en"
    assert negotiate(None, "es;q=0, pt;q=bad") == "en"
    assert negotiate(None, None) == "en"
