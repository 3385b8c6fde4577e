"""Categories from scores; the sentiment of comments in English, Chinese, Portuguese, Spanish."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.core.vocabulary import Category, Metric, Sentiment
from app.feedback.classify import categorize, classify_text, sentiment_of

DETRACTOR, PASSIVE, PROMOTER = Category.DETRACTOR, Category.PASSIVE, Category.PROMOTER
NEG, NEU, POS = Category.NEGATIVE, Category.NEUTRAL, Category.POSITIVE

# The category of every score on each scale, from the lowest score up (SPEC §2).
DEFAULT_CATEGORIES: dict[Metric, list[Category]] = {
    Metric.NPS: [DETRACTOR] * 7 + [PASSIVE] * 2 + [PROMOTER] * 2,  # 0..10
    Metric.CSAT: [NEG, NEG, NEU, POS, POS],  # 1..5
    Metric.STAR: [NEG, NEG, NEU, POS, POS],  # 1..5
    Metric.CES: [NEG, NEG, NEG, NEU, POS, POS, POS],  # 1..7, higher is easier
}
LOWEST = {Metric.NPS: 0, Metric.CSAT: 1, Metric.STAR: 1, Metric.CES: 1}


@pytest.mark.parametrize(
    ("metric", "score", "expected"),
    [
        (metric, LOWEST[metric] + offset, category)
        for metric, categories in DEFAULT_CATEGORIES.items()
        for offset, category in enumerate(categories)
    ],
)
def test_every_score_falls_in_the_specified_category_by_default(
    metric: Metric, score: int, expected: Category
) -> None:
    assert categorize(metric, score, Settings()) is expected


@pytest.mark.parametrize(
    "bands",
    [
        {"nps_detractor_max": 9, "nps_passive_max": 3},
        {"csat_negative_max": 4, "csat_neutral_max": 3},
        {"star_negative_max": 4},
        {"ces_negative_max": 6, "ces_neutral_max": 5},
    ],
)
def test_bands_out_of_order_are_refused(bands: dict[str, int]) -> None:
    """A lower band's top above the next one's would make that band unreachable."""
    with pytest.raises(ValidationError, match="the bands run low to high"):
        Settings(**bands)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "metric", "score", "expected"),
    [
        (Settings(nps_detractor_max=5), Metric.NPS, 5, DETRACTOR),
        (Settings(nps_detractor_max=5), Metric.NPS, 6, PASSIVE),
        (Settings(nps_passive_max=7), Metric.NPS, 7, PASSIVE),
        (Settings(nps_passive_max=7), Metric.NPS, 8, PROMOTER),
        (Settings(csat_negative_max=1), Metric.CSAT, 2, NEU),
        (Settings(csat_neutral_max=4), Metric.CSAT, 4, NEU),
        (Settings(csat_neutral_max=4), Metric.CSAT, 5, POS),
        (Settings(star_negative_max=3), Metric.STAR, 3, NEG),
        (Settings(star_neutral_max=2), Metric.STAR, 3, POS),
        (Settings(ces_negative_max=2), Metric.CES, 3, NEU),
        (Settings(ces_neutral_max=5), Metric.CES, 5, NEU),
        (Settings(ces_neutral_max=5), Metric.CES, 6, POS),
    ],
    ids=lambda value: (
        ",".join(f"{k}={v}" for k, v in value.model_dump(exclude_defaults=True).items())
        if isinstance(value, Settings)
        else None
    ),
)
def test_changed_threshold_moves_the_boundary(
    settings: Settings, metric: Metric, score: int, expected: Category
) -> None:
    assert categorize(metric, score, settings) is expected


def test_changed_threshold_of_one_metric_leaves_the_others_alone() -> None:
    settings = Settings(csat_negative_max=3)
    assert categorize(Metric.CSAT, 3, settings) is NEG
    assert categorize(Metric.STAR, 3, settings) is NEU


@pytest.mark.parametrize(
    ("category", "sentiment"),
    [
        (DETRACTOR, Sentiment.NEGATIVE),
        (NEG, Sentiment.NEGATIVE),
        (PASSIVE, Sentiment.NEUTRAL),
        (NEU, Sentiment.NEUTRAL),
        (PROMOTER, Sentiment.POSITIVE),
        (POS, Sentiment.POSITIVE),
    ],
)
def test_category_gives_its_sentiment(category: Category, sentiment: Sentiment) -> None:
    assert sentiment_of(category) is sentiment


def texts(*comments: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("comment", comments)


@texts(
    "The package never arrived and nobody answers my emails.",
    "Worst customer service ever, the agent was rude.",
    "App keeps crashing after the update, totally useless",
    "Delivery was 5 days late and the box was damaged",
    "I was charged twice for order A-1009!",
    "I want to cancel my subscription",
)
def test_english_complaint_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts(
    "Great service, very helpful staff, thanks!",
    "Fast delivery and easy returns. Love it",
    "The support agent was patient and solved my problem quickly",
    "Couldn't be happier with my new phone",
)
def test_english_praise_is_positive(comment: str) -> None:
    assert classify_text(comment) is Sentiment.POSITIVE


@texts(
    "快递太慢了，等了一个星期还没到",
    "客服态度很差，一直不回复",
    "东西坏了，质量太差",
    "非常失望，再也不会买了",
    "好慢",
)
def test_simplified_chinese_complaint_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts("服务很好，物流也很快，谢谢！", "非常满意，推荐给大家", "质量不错，好评")
def test_simplified_chinese_praise_is_positive(comment: str) -> None:
    assert classify_text(comment) is Sentiment.POSITIVE


@texts("態度很差，我要退錢", "東西壞了，客服也不理人", "等了很久都沒有回覆", "太爛了")
def test_traditional_chinese_complaint_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts("服務很好，謝謝！", "非常滿意，超讚", "出貨很快，客服很專業")
def test_traditional_chinese_praise_is_positive(comment: str) -> None:
    assert classify_text(comment) is Sentiment.POSITIVE


@texts(
    "Péssimo atendimento, nunca mais compro",
    "Entrega atrasada e ninguém respondeu",
    "O pedido não chegou e ninguém responde",
    "Produto veio quebrado, quero meu dinheiro de volta",
)
def test_portuguese_complaint_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts("Adorei! Entrega rápida, obrigado", "Atendimento excelente, muito atenciosos")
def test_portuguese_praise_is_positive(comment: str) -> None:
    assert classify_text(comment) is Sentiment.POSITIVE


@texts(
    "Pésimo servicio, llegó tarde",
    "El pedido no llegó y nadie contesta",
    "La aplicación no funciona",
    "Me cobraron dos veces",
)
def test_spanish_complaint_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts("Me encanta, excelente servicio, gracias", "Muy buena atención, todo llegó a tiempo")
def test_spanish_praise_is_positive(comment: str) -> None:
    assert classify_text(comment) is Sentiment.POSITIVE


@texts(
    "",
    "   ",
    "I changed my delivery address to the office.",
    "Where can I find the invoice?",
    "My order arrived today",
    "请问我的订单什么时候发货？",
    "不好意思，我想修改收货地址",
    "請問可以改寄送地址嗎？",
    "O pedido chegou hoje",
    "Pedido feito pelo aplicativo ontem",
    "El pedido llegó hoy",
)
def test_comment_without_opinion_is_neutral(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEUTRAL


@texts(
    "Good morning, I would like to know the status of my order",
    "Boa tarde, gostaria de saber o prazo de entrega",
    "O pedido chegou à tarde",
    "Buenas tardes, quisiera cambiar la dirección de envío",
    "你好，请问有优惠吗",
)
def test_greeting_is_not_praise_and_afternoon_is_not_late(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEUTRAL


@texts(
    "Please refund my order",
    "I want my money back",
    "请给我退款",
    "我要退款",
    "請幫我退款",
    "Quero o reembolso do meu pedido",
    "Quiero un reembolso",
)
def test_refund_request_is_negative_without_any_negative_adjective(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


def test_refund_request_in_chinese_is_negative() -> None:
    assert classify_text("订单还没收到，请尽快退款，谢谢") is Sentiment.NEGATIVE


@texts("Please refund me, thanks", "谢谢，请退款", "Obrigado, mas quero o reembolso")
def test_thanks_does_not_cancel_a_refund_request(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts("Still no refund", "Ainda sem reembolso", "Todavía sin reembolso", "还没退款")
def test_negated_refund_is_still_a_complaint(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts(
    "The food was not good",
    "I didn't like it",
    "Would not recommend",
    "Não gostei",
    "Não recomendo",
    "No me gustó nada",
    "No lo recomiendo",
    "不好",
    "不满意",
    "不推荐",
    "不滿意",
    "沒有用",
)
def test_negated_praise_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts("Not bad at all", "Não é ruim", "Nada mal", "不差", "不壞")
def test_negated_criticism_is_mildly_positive(comment: str) -> None:
    # Documented choice: a negated criticism counts as praise of half its weight.
    assert classify_text(comment) is Sentiment.POSITIVE


@texts(
    "It never arrived",
    "It doesn't work",
    "O produto não chegou",
    "Não funciona",
    "No llegó",
    "No funciona",
    "没收到",
    "沒收到貨",
    "一直没有回复",
)
def test_what_was_expected_but_did_not_happen_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


@texts(
    "I can't log in to my account", "Não consigo acessar minha conta", "No puedo entrar", "无法登录"
)
def test_cannot_do_something_is_negative(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


def test_portuguese_no_meaning_in_the_does_not_negate() -> None:
    assert classify_text("Atendimento no WhatsApp foi ótimo") is Sentiment.POSITIVE


@texts("pessimo atendimento", "Péssimo atendimento", "PÉSSIMO ATENDIMENTO", "pesimo servicio")
def test_accents_and_capitals_do_not_matter(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEGATIVE


def test_full_width_letters_fold_to_ascii() -> None:
    assert classify_text("ＧＲＥＡＴ　ｓｅｒｖｉｃｅ！") is Sentiment.POSITIVE


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("😡😡", Sentiment.NEGATIVE),
        ("👎", Sentiment.NEGATIVE),
        ("Entrega ok 😞", Sentiment.NEGATIVE),
        ("😍", Sentiment.POSITIVE),
        ("👍🏽", Sentiment.POSITIVE),
        ("Thanks ❤️", Sentiment.POSITIVE),
        ("谢谢 😀", Sentiment.POSITIVE),
        ("great :)", Sentiment.POSITIVE),
        (":( still waiting", Sentiment.NEGATIVE),
        ("see note:done", Sentiment.NEUTRAL),
    ],
)
def test_emoji_and_emoticons_count(comment: str, expected: Sentiment) -> None:
    assert classify_text(comment) is expected


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("Great product, but it arrived broken", Sentiment.NEGATIVE),
        ("Entrega atrasou, porém o atendimento foi excelente", Sentiment.POSITIVE),
        ("质量不错，但是物流太慢了", Sentiment.NEGATIVE),
    ],
)
def test_clause_after_a_contrast_weighs_more(comment: str, expected: Sentiment) -> None:
    assert classify_text(comment) is expected


def test_balanced_praise_and_criticism_is_neutral() -> None:
    assert classify_text("The product is good and the delivery was slow") is Sentiment.NEUTRAL


def test_the_clause_after_but_outweighs_the_one_before() -> None:
    assert classify_text("The product is good but the delivery was slow") is Sentiment.NEGATIVE
    assert classify_text("The delivery was slow but the product is good") is Sentiment.POSITIVE


def test_intensifiers_strengthen_and_softeners_weaken() -> None:
    assert classify_text("expensive") is Sentiment.NEGATIVE
    assert classify_text("too expensive") is Sentiment.NEGATIVE
    assert classify_text("a bit expensive") is Sentiment.NEUTRAL


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("好慢", Sentiment.NEGATIVE),  # 好 before a sentiment word is "very"
        ("很好", Sentiment.POSITIVE),
        ("好评", Sentiment.POSITIVE),
        ("你好", Sentiment.NEUTRAL),
    ],
)
def test_chinese_hao_is_good_or_very_by_what_follows(comment: str, expected: Sentiment) -> None:
    assert classify_text(comment) is expected


@texts("Das Essen war ausgezeichnet", "الخدمة كانت سيئة جدا")
def test_unsupported_language_is_neutral(comment: str) -> None:
    assert classify_text(comment) is Sentiment.NEUTRAL


def test_unsupported_language_still_counts_emoji() -> None:
    assert classify_text("الخدمة سيئة 😡") is Sentiment.NEGATIVE
