"""Optimistic concurrency: a resource's `version` is its ETag, and changes need If-Match."""

from __future__ import annotations

from app.core.errors import PreconditionFailed, PreconditionRequired


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """428 without If-Match, 412 when it names another version than the current one."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired(
            "Send If-Match with the ETag from your last read, so changes do not overwrite "
            "each other.",
            code="if_match_required",
        )
    tags = [t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")]
    if "*" not in tags and str(version) not in tags:
        raise PreconditionFailed(
            f"The resource changed since you read it (now version {version}); read it again.",
            code="version_mismatch",
        )
