"""Fixtures of the webhook tests."""

from __future__ import annotations

import pytest

from app.core.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhooks may reach the test receiver on 127.0.0.1 over http; retries come at once."""
    return settings.model_copy(
        update={
            "webhook_allow_http": True,
            "webhook_allowed_networks": "127.0.0.0/8",
            "webhook_retry_schedule": "0,0,0",
            "webhook_timeout_seconds": 2.0,
            "public_url": "https://feedback.example.com",
        }
    )
