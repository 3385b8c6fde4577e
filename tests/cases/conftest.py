"""Fixtures of the case tests."""

from __future__ import annotations

import httpx
import pytest

from tests.cases.helpers import make_team


@pytest.fixture
async def support(admin: httpx.AsyncClient) -> None:
    """A support team (the default): first response in 60 minutes, resolution in a day."""
    await make_team(admin, "support")
