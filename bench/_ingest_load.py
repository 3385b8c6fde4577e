"""What bench/ingest.py sends: the default and realistic streams of feedback bodies, and the wrk
script that sends them, singly or in batches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# NPS detractors (0-6): negative feedback.
DETRACTORS: tuple[dict[str, Any], ...] = (
    {
        "source": "checkout-web",
        "channel": "web",
        "customer": {"external_id": "cus_42", "email": "ana@example.com", "locale": "pt-BR"},
        "metric": "nps",
        "score": 3,
        "comment": "The delivery was late and nobody answered",
        "tags": ["delivery"],
        "touchpoint": "order-tracking",
        "journey_stage": "delivery",
        "attributes": {"plan": "pro", "order_id": "A-1009"},
    },
    {
        "source": "mobile-app",
        "channel": "app",
        "customer": {"external_id": "cus_77", "email": "joao@example.com", "locale": "pt-PT"},
        "metric": "nps",
        "score": 0,
        "comment": "Fui cobrado duas vezes e o suporte não resolveu",
        "tags": ["billing", "support"],
        "touchpoint": "invoice",
        "journey_stage": "support",
        "attributes": {"plan": "basic", "app_version": "5.2.1"},
    },
    {
        "source": "support-email",
        "channel": "email",
        "customer": {"external_id": "cus_310", "email": "lena@example.com", "locale": "de-DE"},
        "metric": "nps",
        "score": 5,
        "comment": "The replacement part never arrived and the ticket was closed anyway",
        "tags": ["support"],
        "touchpoint": "ticket-closed",
        "journey_stage": "support",
        "attributes": {"plan": "pro", "ticket": "T-5521"},
    },
    {
        "source": "checkout-web",
        "channel": "web",
        "customer": {"external_id": "cus_958", "email": "marc@example.com", "locale": "fr"},
        "metric": "nps",
        "score": 6,
        "comment": "Checkout kept failing on the payment step",
        "tags": ["checkout", "payment"],
        "touchpoint": "payment",
        "journey_stage": "purchase",
        "attributes": {"plan": "free", "retries": 3},
    },
)

# NPS promoters (9-10): positive feedback.
PROMOTERS: tuple[dict[str, Any], ...] = (
    {
        "source": "checkout-web",
        "channel": "web",
        "customer": {"external_id": "cus_43", "email": "rita@example.com", "locale": "pt-BR"},
        "metric": "nps",
        "score": 10,
        "comment": "Arrived a day early and the packaging was great",
        "tags": ["delivery"],
        "touchpoint": "order-tracking",
        "journey_stage": "delivery",
        "attributes": {"plan": "pro", "order_id": "A-1010"},
    },
    {
        "source": "mobile-app",
        "channel": "app",
        "customer": {"external_id": "cus_78", "email": "tiago@example.com", "locale": "pt-PT"},
        "metric": "nps",
        "score": 9,
        "comment": "A aplicação é rápida e o pagamento foi simples",
        "tags": ["app"],
        "touchpoint": "home",
        "journey_stage": "usage",
        "attributes": {"plan": "basic", "app_version": "5.2.1"},
    },
    {
        "source": "support-email",
        "channel": "email",
        "customer": {"external_id": "cus_311", "email": "jonas@example.com", "locale": "de-DE"},
        "metric": "nps",
        "score": 10,
        "comment": "Support solved my problem in one reply, thank you",
        "tags": ["support"],
        "touchpoint": "ticket-closed",
        "journey_stage": "support",
        "attributes": {"plan": "pro", "ticket": "T-5522"},
    },
    {
        "source": "renewal-survey",
        "channel": "email",
        "customer": {"external_id": "cus_959", "email": "claire@example.com", "locale": "fr"},
        "metric": "nps",
        "score": 9,
        "comment": "Renewing was easy and the price is fair",
        "tags": ["renewal"],
        "touchpoint": "renewal-email",
        "journey_stage": "renewal",
        "attributes": {"plan": "pro", "seats": 12},
    },
)


# The realistic stream (--mix realistic): every item with a comment, an e-mail and attributes,
# comments in four languages, from customers drawn out of a fixed set who come back, so that
# complaints join the cases opened by earlier ones. @CUSTOMER@ is replaced per item.
def _realistic(
    source: str, channel: str, locale: str, score: int, comment: str, **attributes: Any
) -> dict[str, Any]:
    return {
        "source": source,
        "channel": channel,
        "customer": {
            "external_id": "@CUSTOMER@",
            "email": "@CUSTOMER@@example.com",
            "locale": locale,
        },
        "metric": "nps",
        "score": score,
        "comment": comment,
        "tags": ["nps"],
        "touchpoint": "survey",
        "journey_stage": "delivery" if score < 5 else "support",
        "attributes": {"survey": "q4-nps", **attributes},
    }


REALISTIC_DETRACTORS: tuple[dict[str, Any], ...] = (
    _realistic(
        "checkout-web",
        "web",
        "en-US",
        2,
        "The delivery was late and nobody answered my emails, write to me at ana.silva@example.org",
        plan="pro",
        order_id="A-1009",
    ),
    _realistic(
        "mobile-app",
        "app",
        "en-GB",
        6,
        "Checkout kept failing on the payment step, three times in a row",
        plan="free",
        retries=3,
    ),
    _realistic(
        "mobile-app",
        "app",
        "zh-CN",
        1,
        "快递晚了五天，客服一直没有回复我的消息",
        plan="basic",
        app_version="5.2.1",
    ),
    _realistic(
        "checkout-web",
        "web",
        "zh-TW",
        4,
        "付款失敗了兩次，但是錢已經被扣了",
        plan="pro",
        order_id="A-2210",
    ),
    _realistic(
        "support-email",
        "email",
        "pt-BR",
        0,
        "Fui cobrado duas vezes e o suporte não resolveu, liguem para +55 11 91234-5678",
        plan="basic",
        ticket="T-5521",
    ),
    _realistic(
        "support-email",
        "email",
        "pt-PT",
        5,
        "A peça de substituição nunca chegou e o pedido foi fechado na mesma",
        plan="pro",
        ticket="T-5522",
    ),
    _realistic(
        "checkout-web",
        "web",
        "es-ES",
        3,
        "El pedido llegó roto y nadie respondió a mis correos",
        plan="free",
        order_id="A-3301",
    ),
    _realistic(
        "mobile-app",
        "app",
        "es-MX",
        6,
        "La aplicación se cierra al pagar y tuve que intentarlo cuatro veces",
        plan="basic",
        app_version="5.1.0",
    ),
)
REALISTIC_OTHERS: tuple[dict[str, Any], ...] = (
    _realistic(
        "checkout-web",
        "web",
        "en-US",
        10,
        "Arrived a day early and the packaging was great",
        plan="pro",
        order_id="A-1010",
    ),
    _realistic(
        "mobile-app", "app", "zh-CN", 9, "应用很快，付款也很简单", plan="basic", app_version="5.2.1"
    ),
    _realistic(
        "support-email",
        "email",
        "pt-BR",
        8,
        "O suporte resolveu em uma resposta, obrigado",
        plan="pro",
        ticket="T-5523",
    ),
    _realistic(
        "renewal-survey",
        "email",
        "es-ES",
        7,
        "Renovar fue fácil aunque el precio subió un poco",
        plan="pro",
        seats=12,
    ),
)
# Customers who come back in the realistic stream (SPEC §4: their complaints join open cases).
RETURNING_CUSTOMERS = 5000
REALISTIC_NEGATIVE_SHARE = 0.6
MIXES = ("default", "realistic")


# wrk runs one Lua state per thread. The bodies are formatted into requests once, in init().
_LUA_SCRIPT = """\
-- Written by bench/ingest.py for one run. Arguments: the API key, the share of negative bodies,
-- the number of returning customers (0: every complaint from a new one), the items per request
-- (0: one item per request to POST /v1/feedback; N: N items to POST /v1/feedback/batch).
local negative_bodies = {
%(negative)s
}
local positive_bodies = {
%(positive)s
}
local share, customers, batch, sent, next_negative, next_positive = 0, 0, 0, 0, 0, 0
local headers, run = nil, 0

function init(args)
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args[1],
  }
  share = tonumber(args[2])
  customers = tonumber(args[3])
  batch = tonumber(args[4])
  math.randomseed(os.time())
  run = math.random(1, 1000000000)
end

-- Item k is negative when floor((k + 1) * share) passes floor(k * share): the share is exact,
-- not left to chance, and the negative items are spread evenly through the run.
local function item()
  local k = sent
  sent = sent + 1
  local body
  if math.floor((k + 1) * share) > math.floor(k * share) then
    next_negative = next_negative %% #negative_bodies + 1
    body = negative_bodies[next_negative]
  else
    next_positive = next_positive %% #positive_bodies + 1
    body = positive_bodies[next_positive]
  end
  -- Without returning customers each complaint is from a customer of its own, so that every
  -- one opens a case (the costlier path) rather than joining one of a handful.
  local customer
  if customers > 0 then
    customer = "cus_" .. math.random(1, customers)
  else
    customer = "cus_" .. run .. "_" .. k
  end
  return (string.gsub(body, "@CUSTOMER@", customer))
end

function request()
  if batch == 0 then
    return wrk.format("POST", nil, headers, item())
  end
  local items = {}
  for i = 1, batch do
    items[i] = item()
  end
  return wrk.format("POST", nil, headers, '{"items":[' .. table.concat(items, ",") .. ']}')
end
"""


def _lua_strings(bodies: Sequence[dict[str, Any]]) -> str:
    lines = []
    for body in bodies:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        assert "]==]" not in text
        lines.append(f"  [==[{text}]==],")
    return "\n".join(lines)


def write_lua_script(directory: Path, mix: str) -> Path:
    path = directory / "ingest.lua"
    if mix == "realistic":
        negative, positive = REALISTIC_DETRACTORS, REALISTIC_OTHERS
    else:
        negative = tuple(
            {**body, "customer": {**body["customer"], "external_id": "@CUSTOMER@"}}
            for body in DETRACTORS
        )
        positive = PROMOTERS
    path.write_text(
        _LUA_SCRIPT % {"negative": _lua_strings(negative), "positive": _lua_strings(positive)},
        encoding="utf-8",
    )
    return path
