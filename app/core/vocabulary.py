"""The words every room shares about a piece of feedback: where it came from, what it measured,
and what it means. Feedback stores them, routing rules name them, reports count them."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    WEB = "web"
    APP = "app"
    EMAIL = "email"
    SMS = "sms"
    CHAT = "chat"
    PHONE = "phone"
    SOCIAL = "social"
    REVIEW = "review"
    IN_STORE = "in_store"
    OTHER = "other"


class Metric(StrEnum):
    NPS = "nps"
    CSAT = "csat"
    CES = "ces"
    STAR = "star"


# Inclusive score range of each metric.
SCALES: dict[Metric, tuple[int, int]] = {
    Metric.NPS: (0, 10),
    Metric.CSAT: (1, 5),
    Metric.CES: (1, 7),
    Metric.STAR: (1, 5),
}


class JourneyStage(StrEnum):
    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    PURCHASE = "purchase"
    DELIVERY = "delivery"
    USAGE = "usage"
    SUPPORT = "support"
    RENEWAL = "renewal"
    OTHER = "other"


class Category(StrEnum):
    DETRACTOR = "detractor"
    PASSIVE = "passive"
    PROMOTER = "promoter"
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"
