"""A million cases in a few statements, as bench/cases.py and bench/sla.py seed them: teams with
their SLA minutes, then cases across statuses, each with the feedback item that opened it."""

from __future__ import annotations

import time

from bench._postgres import checkpoint, run_sql
from bench.common import progress

TEAM_COUNT = 20

TEAMS_SQL = """
INSERT INTO team (key, name, first_response_minutes, resolution_minutes, escalation_team,
                  is_default, created_at, updated_at)
SELECT 'team_' || lpad(i::text, 2, '0'), 'Team ' || i, 60 + 30 * (i % 4), 1440 + 720 * (i % 5),
       NULL, i = 0, now() - interval '1 year', now() - interval '1 year'
FROM generate_series(0, $1 - 1) AS i
"""

# One statement per phase: cases $1..$2, each with the feedback item that opened it.
# team_NN takes floor(20 u²) for a uniform u: team_00 about 22 % of the cases, team_19 2.5 %.
SEED_SQL = """
WITH g AS MATERIALIZED (
    SELECT n, floor($3 * power(random(), 2))::int AS t, random() AS rs, random() AS rp,
           random() AS ra, random() AS rb
    FROM generate_series($1::bigint, $2::bigint) AS n
), s AS (
    SELECT g.*, gen_random_uuid() AS case_id, gen_random_uuid() AS feedback_id,
           'team_' || lpad(g.t::text, 2, '0') AS team, 'cus_' || n AS customer,
           CASE WHEN rs < 0.30 THEN 'open' WHEN rs < 0.45 THEN 'in_progress'
                WHEN rs < 0.55 THEN 'waiting_on_customer' WHEN rs < 0.80 THEN 'resolved'
                ELSE 'closed' END AS status,
           CASE WHEN rp < 0.20 THEN 0 WHEN rp < 0.70 THEN 1 WHEN rp < 0.92 THEN 2 ELSE 3 END AS rank
    FROM g
), c AS MATERIALIZED (
    SELECT s.*, s.status IN ('open', 'in_progress', 'waiting_on_customer') AS active,
           make_interval(mins => tm.first_response_minutes) AS first_response,
           make_interval(mins => tm.resolution_minutes) AS resolution,
           CASE WHEN s.status IN ('open', 'in_progress', 'waiting_on_customer')
                THEN now() - ra * interval '7 days'
                -- resolved under 7 days ago (else the service would have closed it) ...
                WHEN s.status = 'resolved' THEN now() - ra * interval '6 days 20 hours'
                     - rb * make_interval(mins => tm.resolution_minutes)
                -- ... and closed 7 days after being resolved, in the past.
                ELSE now() - interval '10 days' - ra * interval '80 days' END AS created
    FROM s JOIN team tm ON tm.key = s.team
), new_case AS (
    INSERT INTO feedback_case (
        id, status, priority, priority_rank, team, opened_for_team, assignee, customer_key,
        customer_keys, customer_external_id, customer_email, customer_locale, contact_consent,
        can_notify, tags, first_response_due_at, resolution_due_at, first_response_at,
        waiting_since, resolved_at, closed_at, first_response_breached, resolution_breached,
        resolution_code, resolution_summary, customer_message, notify_customer, version,
        created_at, updated_at)
    SELECT case_id, status, (ARRAY['low', 'normal', 'high', 'urgent'])[rank + 1], rank, team,
           team, CASE WHEN status <> 'open' THEN 'agent_' || (n % 40) END, customer,
           ARRAY[customer, customer || '@example.com'], customer, customer || '@example.com',
           'en', true, true, '{}', created + first_response, created + resolution,
           CASE WHEN status <> 'open' THEN least(now(), created + rb * first_response) END,
           CASE WHEN status = 'waiting_on_customer' THEN least(now(), created + first_response) END,
           CASE WHEN NOT active THEN created + rb * resolution END,
           CASE WHEN status = 'closed' THEN created + rb * resolution + interval '7 days' END,
           status = 'open' AND created + first_response < now(),
           active AND status <> 'waiting_on_customer' AND created + resolution < now(),
           CASE WHEN NOT active THEN 'fixed' END,
           CASE WHEN NOT active THEN 'Refunded the duplicate charge' END,
           CASE WHEN NOT active THEN 'We refunded the second charge.' END,
           CASE WHEN NOT active THEN true END,
           1, created, least(now(), created + rb * resolution)
    FROM c
), new_feedback AS (
    INSERT INTO feedback (
        id, source, channel, customer_external_id, customer_email, customer_locale,
        contact_consent, metric, score, comment, tags, touchpoint, journey_stage, attributes,
        category, sentiment, routing_team, submitted_at, received_at)
    SELECT feedback_id, 'checkout-web', 'web', customer, customer || '@example.com', 'en', true,
           'nps', (n % 7)::smallint, 'Charged twice for order A-' || n || ' and no answer yet',
           '{billing}', 'payment', 'purchase', jsonb_build_object('plan', 'pro'), 'detractor',
           'negative', team, created, created
    FROM c
)
INSERT INTO case_feedback (feedback_id, case_id, kind, added_at, source)
SELECT feedback_id, case_id, 'opened', created, 'checkout-web' FROM c
"""


def seed(database_url: str, first: int, last: int) -> float:
    """Cases first..last (and their feedback), then VACUUM ANALYZE; the seconds it took."""
    started = time.monotonic()
    progress(f"seeding cases {first:,} to {last:,}")
    run_sql(
        database_url,
        [
            ("SELECT setseed($1)", [first / (last + 1)]),
            (SEED_SQL, [first, last, TEAM_COUNT]),
            ("VACUUM ANALYZE feedback_case, feedback, case_feedback", []),
        ],
    )
    checkpoint(database_url)
    return time.monotonic() - started
