"""Every table, imported once so the metadata (Alembic, tests) knows them all."""

from app.core.auth import ApiKey
from app.feedback.models import Feedback

__all__ = ["ApiKey", "Feedback"]
