"""Secrets at rest: sealed with Fernet when a key is set, readable again, rotatable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from app.core.config import Settings
from app.core.crypto import SEALED_PREFIX, SecretBox, SecretKeyError


def test_without_a_key_secrets_stay_as_they_are() -> None:
    box = SecretBox(None)
    assert box.seal("whsec_abc") == "whsec_abc"
    assert box.open("whsec_abc") == "whsec_abc"


def test_with_a_key_secrets_are_sealed_and_opened() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    sealed = box.seal("whsec_abc")
    assert sealed.startswith(SEALED_PREFIX)
    assert "whsec_abc" not in sealed
    assert box.open(sealed) == "whsec_abc"
    assert box.open("whsec_clear_from_before") == "whsec_clear_from_before"


def test_a_rotated_key_still_opens_what_the_old_one_sealed() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox(old).seal("secret")
    assert SecretBox(f"{new},{old}").open(sealed) == "secret"
    with pytest.raises(SecretKeyError):
        SecretBox(new).open(sealed)
    with pytest.raises(SecretKeyError):
        SecretBox(None).open(sealed)


def test_a_malformed_key_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="url-safe base64"):
        Settings(secret_key="not a fernet key")
