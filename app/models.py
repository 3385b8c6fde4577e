"""Every table, imported once so the metadata (Alembic, tests) knows them all."""

from app.cases.models import Case, CaseEvent, CaseFeedback, Customer, CustomerIdentity
from app.connectors.models import Connector, ConnectorDelivery, ConnectorResponse
from app.core.auth import ApiKey
from app.core.jobs import JobLease
from app.core.ratelimit import RateLimitWindow
from app.feedback.models import Feedback, SourceIdentitySecret
from app.notifications.models import DeliveryAttempt, OutboxMessage, WebhookEndpoint
from app.reports.models import score_rollup
from app.routing.models import RoutingGeneration, RoutingRule, RoutingRuleVersion, Team

__all__ = [
    "ApiKey",
    "Case",
    "CaseEvent",
    "CaseFeedback",
    "Connector",
    "ConnectorDelivery",
    "ConnectorResponse",
    "Customer",
    "CustomerIdentity",
    "DeliveryAttempt",
    "Feedback",
    "JobLease",
    "OutboxMessage",
    "RateLimitWindow",
    "RoutingGeneration",
    "RoutingRule",
    "RoutingRuleVersion",
    "SourceIdentitySecret",
    "Team",
    "WebhookEndpoint",
    "score_rollup",
]
