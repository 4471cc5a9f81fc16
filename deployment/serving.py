"""``offerpilot serve``: the bundle's policy as an HTTP decision service (FastAPI, run by uvicorn).

``POST /decide`` takes one or many customers, each with the policy's features (in the manifest's order) and the
offers the contact caps and eligibility allow now, and returns one decision per customer: the offer, the
probability of every action (exploration included: what the decisions log must record), the propensity of the
chosen offer and the critic's expected value. ``GET /health`` says the service is up; ``GET /metadata`` returns the
bundle's manifest. The bundle's hashes are checked before the app exists, so a tampered bundle never serves.
Requests are validated against the bundle (feature count, finite numbers, known offers, no unknown fields) and
refused with 422 (400 for malformed JSON), naming the field.
"""

import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, create_model

from offerpilot.deployment.bundle import Bundle, Exploration

MAX_CUSTOMERS = 10_000
"""Most customers one request may carry."""


class Decision(BaseModel):
    """The decision for one customer."""

    user_id: str
    offer_id: str
    propensity: float = Field(description="probability the chosen offer had: log it with the decision")
    probabilities: dict[str, float] = Field(description="probability of every action, exploration included")
    expected_value: float = Field(description="the critic's expected objective still to come, money per customer")


class DecideResponse(BaseModel):
    policy_id: str
    exploration: str
    decisions: list[Decision]


def request_model(bundle: Bundle) -> type[BaseModel]:
    """The ``/decide`` body for this bundle: ``{"customers": [{"user_id", "features", "allowed_offers"}, ...]}``."""
    n = bundle.n_features
    customer = create_model(
        "Customer",
        __config__=ConfigDict(extra="forbid"),
        user_id=(Annotated[str, Field(min_length=1, max_length=256)], ...),
        features=(Annotated[list[FiniteFloat], Field(min_length=n, max_length=n, description=f"the {n} features, in order: {', '.join(bundle.feature_names)}")], ...),
        allowed_offers=(list[Literal[bundle.action_ids]], Field(description="offers the contact caps and eligibility allow now; 'none' is always allowed")),
    )
    return create_model(
        "DecideRequest",
        __config__=ConfigDict(extra="forbid"),
        customers=(Annotated[list[customer], Field(min_length=1, max_length=MAX_CUSTOMERS)], ...),
    )


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "customers", 0, "features")`` -> ``customers[0].features``."""
    text = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _message(error: dict[str, Any]) -> str:
    """One validation error as ``field: what is wrong``; malformed JSON as where it broke."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        return f"malformed JSON at character {loc[-1]}: {error.get('ctx', {}).get('error', error.get('msg'))}"
    return f"{_field(loc)}: {error.get('msg')}"


def create_app(bundle_dir: str | Path, exploration: Exploration = Exploration(), seed: int = 0, threads: int = 1) -> FastAPI:
    """The decision service of the bundle in ``bundle_dir`` (loaded and verified now: a bad bundle raises here).

    :param seed: seeds the service's one random generator; decisions are drawn in request order.
    :param threads: onnxruntime intra-op threads.
    """
    bundle = Bundle(bundle_dir, threads=threads)
    rng = np.random.default_rng(seed)
    body_model = request_model(bundle)
    index = {offer: i for i, offer in enumerate(bundle.action_ids)}
    started = time.monotonic()
    served = {"requests": 0, "decisions": 0}
    app = FastAPI(title="offerpilot decision service", version=bundle.manifest.offerpilot_version,
                  description=f"Policy {bundle.policy_id}: which offer to send each customer now.")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        malformed = any(e.get("type") == "json_invalid" for e in errors)
        messages = [_message(e) for e in errors[:20]]
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors[:20]]
        return JSONResponse(status_code=400 if malformed else 422, content={"error": "; ".join(messages), "detail": detail})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "policy_id": bundle.policy_id, "uptime_s": round(time.monotonic() - started, 3), **served}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        return {**bundle.manifest.to_dict(), "serving": {"exploration": exploration.tag, "seed": seed, "max_customers": MAX_CUSTOMERS}}

    @app.post("/decide", response_model=DecideResponse)
    async def decide(body: body_model) -> DecideResponse:  # type: ignore[valid-type]
        customers = body.customers
        features = np.array([c.features for c in customers], dtype=np.float32)
        mask = np.zeros((len(customers), bundle.n_actions), dtype=bool)
        rows = [i for i, c in enumerate(customers) for _ in c.allowed_offers]
        cols = [index[o] for c in customers for o in c.allowed_offers]
        mask[rows, cols] = True
        mask[:, 0] = True  # 'none' is always allowed
        chosen = bundle.decide(features, mask, exploration, rng)
        served["requests"] += 1
        served["decisions"] += len(customers)
        probs = chosen.probabilities.tolist()
        return DecideResponse(
            policy_id=bundle.policy_id,
            exploration=exploration.tag,
            decisions=[
                Decision(user_id=c.user_id, offer_id=bundle.action_ids[a], propensity=p, probabilities=dict(zip(bundle.action_ids, row)), expected_value=v)
                for c, a, p, row, v in zip(customers, chosen.actions.tolist(), chosen.propensities.tolist(), probs, chosen.values.tolist())
            ],
        )

    return app
