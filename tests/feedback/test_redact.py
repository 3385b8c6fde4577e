"""Personal data typed into comments is masked; everything else stays exactly as it was."""

from __future__ import annotations

import pytest

from app.feedback.redact import redact_personal_data


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("Write to ana.silva+orders@example.com.br", "Write to [email]"),
        ("MEU E-MAIL: JOÃO.PEREIRA@EMPRESA.PT", "MEU E-MAIL: [email]"),
        ("Reply to bob@mail.example.co.uk.", "Reply to [email]."),
        ("邮箱zhang.wei@qq.com，谢谢", "邮箱[email]，谢谢"),
    ],
)
def test_email_address_is_masked(comment: str, expected: str) -> None:
    assert redact_personal_data(comment) == expected


@pytest.mark.parametrize(
    "phone",
    [
        "+55 11 91234-5678",
        "(11) 91234-5678",
        "+1 (415) 555-0132",
        "555-123-4567",
        "555.123.4567",
        "555-1234",
        "912 345 678",
        "+351 912 345 678",
        "+44 20 7946 0958",
        "0034 612 34 56 78",
        "13800138000",
        "138-0013-8000",
        "+86 138 0013 8000",
    ],
)
def test_phone_number_is_masked(phone: str) -> None:
    assert redact_personal_data(f"Call me on {phone}, please") == "Call me on [phone], please"


def test_phone_number_glued_to_chinese_words_is_masked() -> None:
    assert redact_personal_data("请打我电话13800138000谢谢") == "请打我电话[phone]谢谢"


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "3782 822463 10005",  # American Express: 4-6-5
        "6011 0009 9013 9424",
        "4222222222222",  # 13 digits
        "4111 1111 1111 1111 110",  # 19 digits: 4-4-4-4-3
    ],
)
def test_card_number_passing_luhn_is_masked_as_a_card_not_a_phone(card: str) -> None:
    assert redact_personal_data(f"Charged twice on {card}!") == "Charged twice on [card]!"


def test_card_number_followed_by_its_expiry_is_masked() -> None:
    assert redact_personal_data("card 4111 1111 1111 1111 12/27") == "card [card] 12/27"


def test_sixteen_digits_failing_luhn_are_not_a_card() -> None:
    comment = "Reference 4111 1111 1111 1112"
    assert redact_personal_data(comment) is comment


@pytest.mark.parametrize(
    "comment",
    [
        "Order A-1009 never arrived",
        "Customer since 2024",
        "Paid R$ 1.234,56 for it",
        "It cost 12.99 each",
        "Paid US$ 1,234.56 and €1.234.567,00",
        "Ordered on 2026-11-23 at 10:30",
        "Ordered on 23.11.2026",
        "Ordered on 23/11/2026",
        "3 items, 2 boxes, room 101",
        "Version 1.2.3 of the app, server 192.168.100.1",
        "A customer from 2019-2024",
        "Ticket #12345678 and ID-12345678",
        "Tracking number 94001000000000000000000",
        "1234567.89 points",
    ],
)
def test_ordinary_numbers_are_left_alone(comment: str) -> None:
    assert redact_personal_data(comment) is comment


def test_bare_run_of_phone_length_is_masked_even_if_it_is_an_order_number() -> None:
    # Documented choice: a phone typed without separators looks exactly like this.
    assert redact_personal_data("order 123456789") == "order [phone]"


def test_date_right_before_a_phone_number_stays() -> None:
    assert redact_personal_data("2026-11-23 912 345 678") == "2026-11-23 [phone]"


@pytest.mark.parametrize(
    "comment",
    [
        "服務很好，謝謝！😀",
        "服务太差了，我要退款 😡👎🏽",
        "الخدمة ممتازة، شكرا جزيلا 🙏",
        "\u200fשלום\u200f, תודה רבה ❤️",
        "Entrega rápida, obrigado! 👍",
        "",
    ],
)
def test_comment_without_personal_data_comes_back_as_the_same_object(comment: str) -> None:
    assert redact_personal_data(comment) is comment


def test_masking_leaves_the_text_around_it_byte_for_byte() -> None:
    comment = "邮箱：zhang.wei@qq.com，电话：+86 138 0013 8000 😡 شكرا\u200f،卡号4111111111111111。"
    expected = "邮箱：[email]，电话：[phone] 😡 شكرا\u200f،卡号[card]。"
    assert redact_personal_data(comment).encode() == expected.encode()


def test_every_kind_in_one_comment_is_masked() -> None:
    comment = (
        "Charged twice on card 4111 1111 1111 1111 for order A-1009 on 2026-11-23. "
        "Call +55 11 91234-5678 or write to ana@example.com, total R$ 1.234,56."
    )
    assert redact_personal_data(comment) == (
        "Charged twice on card [card] for order A-1009 on 2026-11-23. "
        "Call [phone] or write to [email], total R$ 1.234,56."
    )
