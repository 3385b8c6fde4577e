"""What bench/reports.py seeds: teams and an endpoint, then cases with their feedback, events and
messages, then the rest of the feedback, in a few statements."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from app.core.vocabulary import Channel, JourneyStage
from app.reports.facts import FOLD_SQL
from app.reports.rollups import COMPACT_SQL
from bench._postgres import checkpoint, run_sql
from bench.common import progress

TEAM_COUNT = 20
# The feedback's covering indexes the reports read (2026-12-07-0203_report_indexes.py):
# dropped for the baseline.
REPORT_INDEXES = ("ix_feedback_report_scores", "ix_feedback_report_negative")

SETUP_SQL = """
INSERT INTO team (key, name, first_response_minutes, resolution_minutes, escalation_team,
                  is_default, created_at, updated_at)
SELECT 'team_' || lpad(i::text, 2, '0'), 'Team ' || i, 60 + 30 * (i % 4), 1440 + 720 * (i % 5),
       NULL, i = 0, now() - interval '2 years', now() - interval '2 years'
FROM generate_series(0, $1 - 1) AS i
"""
ENDPOINT_SQL = """
INSERT INTO webhook_endpoint (id, url, event_types, enabled, secret, created_at, updated_at)
VALUES (gen_random_uuid(), 'https://hooks.example.com/closeloop', '{case.resolved}', true,
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now())
"""


def _array(values: Iterable[str]) -> str:
    return "ARRAY[" + ",".join(f"'{value}'" for value in values) + "]"


# The app's own words: every channel, every journey stage but `other`.
_CHANNELS = _array(Channel)
_STAGES = _array(stage for stage in JourneyStage if stage is not JourneyStage.OTHER)
_TOUCHPOINTS = "ARRAY['checkout','order-tracking','returns','billing','onboarding','help-center']"

CASES_SQL = f"""
WITH g AS MATERIALIZED (
    SELECT n, floor($2 * power(random(), 2))::int AS t, random() AS ra, random() AS rb,
           random() AS rs, random() AS rc, random() AS rk
    FROM generate_series(1, $1::bigint) AS n
), s AS MATERIALIZED (
    SELECT g.*, gen_random_uuid() AS case_id, gen_random_uuid() AS feedback_id,
           'team_' || lpad(g.t::text, 2, '0') AS team, 'cus_' || n AS customer,
           now() - ra * interval '365 days' AS created, rc < 0.85 AS consent,
           ({_CHANNELS})[1 + n % 10] AS channel, ({_STAGES})[1 + (n / 10) % 7] AS stage,
           ({_TOUCHPOINTS})[1 + (n / 70) % 6] AS touchpoint, 'src_' || (n % 8) AS source
    FROM g
), c AS MATERIALIZED (
    SELECT s.*,
           CASE WHEN created < now() - interval '9 days' THEN 'closed'
                WHEN rs < 0.30 THEN 'open' WHEN rs < 0.45 THEN 'in_progress'
                WHEN rs < 0.55 THEN 'waiting_on_customer' ELSE 'resolved' END AS status,
           make_interval(mins => tm.first_response_minutes) AS first_response,
           make_interval(mins => tm.resolution_minutes) AS resolution
    FROM s JOIN team tm ON tm.key = s.team
), d AS MATERIALIZED (
    SELECT c.*, status IN ('open', 'in_progress', 'waiting_on_customer') AS active,
           CASE WHEN status <> 'open'
                THEN least(now(), created + 2 * rb * first_response) END AS responded,
           CASE WHEN status IN ('resolved', 'closed')
                THEN least(now(), created + 1.5 * rb * resolution) END AS resolved
    FROM c
), new_case AS (
    INSERT INTO feedback_case (
        id, status, priority, priority_rank, team, opened_for_team, customer_key, customer_keys,
        customer_external_id, customer_email, customer_locale, contact_consent, can_notify, tags,
        first_response_due_at, resolution_due_at, first_response_at, resolved_at, closed_at,
        first_response_breached, resolution_breached, resolution_code, notify_customer, version,
        created_at, updated_at)
    SELECT case_id, status, 'normal', 1, team, team, customer,
           ARRAY[customer, customer || '@example.com'], customer, customer || '@example.com',
           'en', consent, true, '{{}}', created + first_response, created + resolution,
           responded, resolved,
           CASE WHEN status = 'closed' THEN resolved + interval '7 days' END,
           coalesce(responded, now()) > created + first_response,
           coalesce(resolved, now()) > created + resolution
               AND status <> 'waiting_on_customer',
           CASE WHEN resolved IS NOT NULL THEN 'fixed' END,
           CASE WHEN resolved IS NOT NULL THEN consent END,
           3, created, coalesce(resolved, responded, created)
    FROM d ORDER BY created
), new_feedback AS (
    INSERT INTO feedback (
        id, source, channel, customer_external_id, customer_email, customer_locale,
        contact_consent, metric, score, comment, touchpoint, journey_stage, category, sentiment,
        routing_team, submitted_at, received_at)
    SELECT feedback_id, source, channel, customer, customer || '@example.com', 'en', consent,
           'nps', (n % 7)::smallint, 'Charged twice for order A-' || n, touchpoint, stage,
           'detractor', 'negative', team, created, created
    FROM d ORDER BY created
), new_link AS (
    INSERT INTO case_feedback (feedback_id, case_id, kind, added_at, source)
    SELECT feedback_id, case_id, 'opened', created, source FROM d ORDER BY created
), new_message AS (
    INSERT INTO outbox_message (id, endpoint_id, event_type, body, case_id, status, attempts,
                                tries, next_attempt_at, created_at, delivered_at, failed_at)
    SELECT gen_random_uuid(), (SELECT id FROM webhook_endpoint LIMIT 1), 'case.resolved',
           convert_to('{{"type":"case.resolved"}}', 'UTF8'), case_id,
           CASE WHEN rk < 0.9 THEN 'delivered' ELSE 'failed' END, 1, 1, resolved, resolved,
           CASE WHEN rk < 0.9 THEN resolved END, CASE WHEN rk >= 0.9 THEN resolved END
    FROM d WHERE resolved IS NOT NULL AND consent
), new_event AS (
    INSERT INTO case_event (id, case_id, type, actor, at, data)
    SELECT gen_random_uuid(), case_id, 'resolved', 'agent', resolved, '{{}}'::jsonb
    FROM d WHERE resolved IS NOT NULL
    UNION ALL
    SELECT gen_random_uuid(), case_id, 'reopened', 'customer', resolved, '{{}}'::jsonb
    FROM d WHERE resolved IS NOT NULL AND rk > 0.92
), answered AS MATERIALIZED (
    SELECT d.*, gen_random_uuid() AS answer_id, (n % 11)::smallint AS answer_score
    FROM d WHERE resolved IS NOT NULL AND consent AND rk < 0.27
), new_answer AS (
    INSERT INTO feedback (
        id, source, channel, customer_external_id, customer_locale, contact_consent, metric,
        score, touchpoint, journey_stage, category, sentiment, submitted_at, received_at)
    SELECT answer_id, source, channel, customer, 'en', consent, 'nps', answer_score, touchpoint,
           stage,
           CASE WHEN answer_score <= 6 THEN 'detractor' WHEN answer_score <= 8 THEN 'passive'
                ELSE 'promoter' END,
           CASE WHEN answer_score <= 6 THEN 'negative' WHEN answer_score <= 8 THEN 'neutral'
                ELSE 'positive' END,
           resolved + interval '1 day', resolved + interval '1 day'
    FROM answered
)
INSERT INTO case_feedback (feedback_id, case_id, kind, added_at, source)
SELECT answer_id, case_id, 'followup', resolved + interval '1 day', source FROM answered
"""

# Each metric's neither-negative scores, its share of the items and their categories.
OTHER_FEEDBACK_SQL = f"""
WITH g AS MATERIALIZED (
    SELECT n, random() AS rm, random() AS rv, now() - random() * interval '365 days' AS at
    FROM generate_series(1, $1::bigint) AS n
), m AS (
    SELECT g.*,
           CASE WHEN rm < 0.5 THEN 'nps' WHEN rm < 0.75 THEN 'csat' WHEN rm < 0.9 THEN 'ces'
                ELSE 'star' END AS metric
    FROM g
), s AS (
    SELECT m.*,
           CASE metric WHEN 'nps' THEN 7 + floor(rv * 4) WHEN 'ces' THEN 4 + floor(rv * 4)
                       ELSE 3 + floor(rv * 3) END::smallint AS score
    FROM m
)
INSERT INTO feedback (id, source, channel, customer_external_id, metric, score, touchpoint,
                      journey_stage, category, sentiment, submitted_at, received_at)
SELECT gen_random_uuid(), 'src_' || (n % 8), ({_CHANNELS})[1 + n % 10], 'anon_' || n, metric,
       score, ({_TOUCHPOINTS})[1 + (n / 3) % 6], ({_STAGES})[1 + (n / 7) % 7],
       CASE WHEN metric = 'nps' AND score <= 8 THEN 'passive' WHEN metric = 'nps' THEN 'promoter'
            WHEN score = 3 OR (metric = 'ces' AND score = 4) THEN 'neutral' ELSE 'positive' END,
       CASE WHEN score = 3 OR (metric IN ('ces', 'nps') AND score IN (4, 7, 8)) THEN 'neutral'
            ELSE 'positive' END,
       at, at
FROM s ORDER BY at
"""


def seed(url: str, cases: int, feedback: int, *, report_indexes: bool) -> float:
    started = time.monotonic()
    progress(f"seeding {cases:,} cases with their feedback, then {feedback - cases:,} more items")
    statements: list[tuple[str, Sequence[Any]]] = [
        ("SELECT setseed(0.42)", []),
        (CASES_SQL, [cases, TEAM_COUNT]),
        (OTHER_FEEDBACK_SQL, [feedback - cases]),
    ]
    # The counts the triggers appended while seeding, and the cases they marked, folded as the
    # worker folds them.
    statements += [
        (
            "ANALYZE feedback, feedback_case, case_feedback, case_event, outbox_message, "
            "report_case_dirty",
            [],
        ),
        (COMPACT_SQL, [2**31 - 1]),
        (FOLD_SQL, [2**31 - 1]),
    ]
    if not report_indexes:
        statements += [(f"DROP INDEX {name}", []) for name in REPORT_INDEXES]
    statements.append(
        (
            "VACUUM ANALYZE feedback, feedback_case, case_feedback, case_event, outbox_message, "
            "report_case, report_loop_item, report_case_dirty",
            [],
        )
    )
    run_sql(url, statements)
    checkpoint(url)
    return time.monotonic() - started
