"""Every table, imported once so the metadata (Alembic, tests) knows them all."""

from app.core.auth import ApiKey
from app.feedback.models import Feedback
from app.routing.models import RoutingGeneration, RoutingRule, RoutingRuleVersion, Team

__all__ = ["ApiKey", "Feedback", "RoutingGeneration", "RoutingRule", "RoutingRuleVersion", "Team"]
