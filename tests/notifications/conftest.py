"""Fixtures of the webhook tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.core.config import Settings
from app.core.db import BoundDatabase
from tests.notifications.dispatching import watching_dispatcher_errors
from tests.notifications.helpers import Outbox, admin_client


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


@pytest.fixture
async def strict(database: BoundDatabase, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client on an app with the default guard: https only, no allowlist."""
    async with admin_client(
        settings, database, webhook_allow_http=False, webhook_allowed_networks=""
    ) as client:
        yield client


@pytest.fixture
def outbox(database: BoundDatabase) -> Outbox:
    return Outbox(database)


@pytest.fixture
def dispatcher_errors() -> Iterator[None]:
    """The dispatcher tests use it: their waits fail at once when the dispatcher logs an error."""
    with watching_dispatcher_errors():
        yield
