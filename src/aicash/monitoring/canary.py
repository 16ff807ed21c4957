"""The canary judged on live results: promote it to 100%, end it (traffic 0), or keep waiting.

Period: since the canary last started taking traffic (its promotion in the audit log) until now; production's
decisions are taken from the same period. Statistical rule, with a minimum sample:
1. Both arms need at least `min_samples` evaluated decisions (see `aicash.monitoring.outcomes`), otherwise
   nothing happens ("insufficient").
2. Accuracy, and the win rate when both arms have at least `MIN_TRADES` trades, are compared with one-sided
   two-proportion z-tests (pooled variance) at `alpha` split over the metrics tested (Bonferroni), so the chance of
   a wrong call across them stays within alpha.
3. **Roll back** when the canary is significantly worse on any metric, or fails the latency guard: its p95 latency
   (from the prediction log) above `LATENCY_RATIO` x production's and more than `LATENCY_MARGIN_MS` above it, or
   above the 1,000 ms limit of the latency alert.
4. **Promote** when it is not worse, passes the latency guard and is significantly better on at least one metric.
5. Otherwise **wait**: the evidence does not separate them yet.
Caveat: consecutive decisions overlap in their horizons, so they are not fully independent and the nominal alpha
is optimistic; the minimum sample and the Bonferroni split keep the rule conservative.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import Engine, select

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, Prediction
from aicash.model_input import MODEL_NAME
from aicash.monitoring.alerts import LATENCY_P95_SECONDS
from aicash.monitoring.outcomes import LiveFigures, live_figures
from aicash.monitoring.window import utc
from aicash.registry import ModelRecord, get_model, list_models, promote
from aicash.registry.lifecycle import PROMOTE

MIN_SAMPLES = 200
MIN_TRADES = 30  # as the training gate: a win rate over fewer trades is noise
ALPHA = 0.05
LATENCY_RATIO = 1.5
LATENCY_MARGIN_MS = 50.0
Action = Literal["promote", "rollback", "wait", "insufficient"]


class NoCanaryError(ValueError):
    """No canary is serving, so there is nothing to judge."""


@dataclass(frozen=True)
class Arm:
    """One model version's live evidence over the period."""

    version: str
    figures: LiveFigures
    requests: int
    p95_latency_ms: float | None


@dataclass(frozen=True)
class Comparison:
    metric: str
    canary: float
    production: float
    canary_n: int
    production_n: int
    z: float
    p_better: float  # one-sided p-value of "canary > production"
    p_worse: float  # one-sided p-value of "canary < production"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: list[str]
    canary: Arm
    production: Arm
    since: datetime
    comparisons: list[Comparison] = field(default_factory=list)

    def text(self) -> str:
        return f"{self.action}: " + "; ".join(self.reasons)

    def details(self) -> dict[str, Any]:
        return {
            "action": self.action, "reasons": self.reasons, "since": self.since.isoformat(),
            "canary": {"version": self.canary.version, **asdict(self.canary.figures),
                       "requests": self.canary.requests, "p95_latency_ms": self.canary.p95_latency_ms},
            "production": {"version": self.production.version, **asdict(self.production.figures),
                           "requests": self.production.requests, "p95_latency_ms": self.production.p95_latency_ms},
            "comparisons": [asdict(c) for c in self.comparisons],
        }


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def two_proportion_test(
    successes_a: int, n_a: int, successes_b: int, n_b: int
) -> tuple[float, float, float]:
    """Pooled two-proportion z statistic of a vs b and its one-sided p-values (a > b, a < b)."""
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = successes_a / n_a - successes_b / n_b
    if se == 0:
        return 0.0, (0.0 if diff > 0 else 1.0), (0.0 if diff < 0 else 1.0)
    z = diff / se
    return z, _normal_sf(z), _normal_sf(-z)


def _comparisons(canary: LiveFigures, production: LiveFigures) -> list[Comparison]:
    out = []
    z, better, worse = two_proportion_test(canary.correct, canary.decisions, production.correct, production.decisions)
    out.append(Comparison("accuracy", canary.correct / canary.decisions, production.correct / production.decisions,
                          canary.decisions, production.decisions, z, better, worse))
    if canary.trades >= MIN_TRADES and production.trades >= MIN_TRADES:
        z, better, worse = two_proportion_test(canary.wins, canary.trades, production.wins, production.trades)
        out.append(Comparison("win_rate", canary.wins / canary.trades, production.wins / production.trades,
                              canary.trades, production.trades, z, better, worse))
    return out


def _latency_guard(canary: Arm, production: Arm, min_samples: int) -> str | None:
    """Why the canary's latency is unacceptable, or None."""
    c, p = canary.p95_latency_ms, production.p95_latency_ms
    if c is None or canary.requests < min_samples:
        return None
    if c > LATENCY_P95_SECONDS * 1000:
        return f"canary p95 latency {c:.0f} ms is above the {LATENCY_P95_SECONDS * 1000:.0f} ms limit"
    if p is not None and production.requests >= min_samples and c > LATENCY_RATIO * p and c - p > LATENCY_MARGIN_MS:
        return f"canary p95 latency {c:.0f} ms vs production {p:.0f} ms (more than {LATENCY_RATIO:g}x and " \
               f"+{LATENCY_MARGIN_MS:g} ms)"
    return None


def judge(canary: Arm, production: Arm, since: datetime, min_samples: int = MIN_SAMPLES,
          alpha: float = ALPHA) -> Verdict:
    """The decision for the evidence (pure: no database)."""
    short = [a for a in (canary, production) if a.figures.decisions < min_samples]
    if short:
        counts = ", ".join(f"{a.version} has {a.figures.decisions}" for a in short)
        return Verdict("insufficient", [f"need {min_samples} evaluated decisions per version, {counts}: nothing "
                                        "changed"], canary, production, since)
    comparisons = _comparisons(canary.figures, production.figures)
    each = alpha / len(comparisons)
    described = [f"{c.metric} {c.canary:.3f} vs {c.production:.3f} (n {c.canary_n}/{c.production_n}, z {c.z:+.2f}, "
                 f"p_better {c.p_better:.3g}, p_worse {c.p_worse:.3g}, alpha {each:.3g})" for c in comparisons]
    worse = [c.metric for c in comparisons if c.p_worse < each]
    better = [c.metric for c in comparisons if c.p_better < each]
    slow = _latency_guard(canary, production, min_samples)
    if worse or slow:
        why = ([f"canary significantly worse on {', '.join(worse)}"] if worse else []) + ([slow] if slow else [])
        return Verdict("rollback", why + described, canary, production, since, comparisons)
    if better:
        return Verdict("promote", [f"canary significantly better on {', '.join(better)}", *described],
                       canary, production, since, comparisons)
    return Verdict("wait", ["no significant difference yet", *described], canary, production, since, comparisons)


# -- database ---------------------------------------------------------------------------------------------------
def serving_canary(engine: Engine) -> tuple[ModelRecord, ModelRecord]:
    records = list_models(engine)
    production = next((r for r in records if r.status == "production"), None)
    canary = next((r for r in records if r.is_canary), None)
    if canary is None or production is None:
        raise NoCanaryError("no canary is serving: start one with `aicash models promote VERSION --traffic 10`")
    return canary, production


def canary_since(engine: Engine, canary: ModelRecord) -> datetime:
    """When the canary last went from no traffic to a share (audit log); its last update otherwise."""
    since = utc(canary.updated_at)
    with engine.connect() as conn:
        entries = conn.execute(select(AuditLog.at, AuditLog.details).where(
            AuditLog.action == PROMOTE, AuditLog.target == f"{canary.name}:{canary.version}").order_by(AuditLog.id))
        for at, details in entries:
            if not (details or {}).get("from_traffic") and 0 < float((details or {}).get("to_traffic") or 0) < 100:
                since = utc(at)
    return since


def _latency(engine: Engine, version: str, since: datetime) -> tuple[int, float | None]:
    with engine.connect() as conn:
        values = conn.execute(select(Prediction.latency_ms).where(
            Prediction.model_version == version, Prediction.created_at >= since)).scalars().all()
    return len(values), (float(np.percentile(values, 95)) if values else None)


def gather(engine: Engine, now: datetime | None = None) -> tuple[Arm, Arm, datetime]:
    canary, production = serving_canary(engine)
    since = canary_since(engine, canary)
    live = live_figures(engine, since, utc(now or datetime.now(UTC)), [canary.version, production.version])
    empty = LiveFigures(0, 0, 0, 0, None)
    arms = []
    for record in (canary, production):
        requests, p95 = _latency(engine, record.version, since)
        arms.append(Arm(record.version, live.get(record.version, empty), requests, p95))
    return arms[0], arms[1], since


@dataclass(frozen=True)
class Applied:
    changed: bool
    message: str


def apply(engine: Engine, verdict: Verdict, actor: str = "monitor") -> Applied:
    """Carry out a promote or rollback verdict; the audit log keeps the verdict's numbers (actor `monitor`)."""
    if verdict.action not in ("promote", "rollback"):
        return Applied(False, f"nothing to do ({verdict.action})")
    version = verdict.canary.version
    reason = f"live canary judgement: {verdict.text()}"[:2000]
    if verdict.action == "promote":
        if get_model(engine, version).gate_passed is not True:
            return Applied(False, f"{version} is better live but was forced past the gate: promote it by hand "
                                  "(`aicash models promote VERSION --traffic 100 --force --reason ...`)")
        promote(engine, version, 100, actor=actor, reason=reason)
        message = f"{version} promoted to production (100%)"
    else:
        promote(engine, version, 0, actor=actor, reason=reason)
        message = f"canary {version} ended (traffic 0); {verdict.production.version} serves 100%"
    with session_scope(engine) as session:
        session.add(AuditLog(actor=actor, action="monitor.canary", target=f"{MODEL_NAME}:{version}",
                             details=verdict.details()))
    return Applied(True, message)
