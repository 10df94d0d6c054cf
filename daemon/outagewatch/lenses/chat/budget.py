"""The daily spending ledger of chat probes: requests, tokens, estimated cost.

One ledger per daemon, built in the composition root and kept across config
reloads, so a reload never resets what was spent today. Caps come from the
config (per probe, and per service over all its chat probes); days are UTC.
A request is counted when it is admitted, before it is sent, so a probe that
times out still pays; tokens and cost are added when the run reports them.

Persistence: ``snapshot()`` returns plain JSON-able data and ``load()`` takes
it back; a snapshot from an earlier day is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from outagewatch.config_types import ChatBudgetCaps, ChatPrice, ChatProbeBase, Config

ProbeKey = tuple[str, str]


def utc_day(now: float) -> str:
    """The UTC date of a timestamp, as YYYY-MM-DD."""
    return datetime.fromtimestamp(now, tz=UTC).date().isoformat()


def next_utc_midnight(now: float) -> float:
    """When the next UTC day starts."""
    day = datetime.fromtimestamp(now, tz=UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass
class Usage:
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0

    def value(self, resource: str) -> float:
        return float(getattr(self, resource))


@dataclass(frozen=True)
class Admission:
    """The answer to "may this probe send a request now?"."""

    allowed: bool
    resource: str | None = None  # the exhausted cap when refused
    first_refusal: bool = False  # the first refusal of this probe today: log it once
    resumes_at: float | None = None


def _caps(caps: ChatBudgetCaps) -> dict[str, float]:
    values = {
        "requests": caps.requests_per_day,
        "tokens": caps.tokens_per_day,
        "cost": caps.cost_per_day,
    }
    return {resource: float(cap) for resource, cap in values.items() if cap is not None}


def estimated_cost(price: ChatPrice | None, input_tokens: int, output_tokens: int) -> float:
    if price is None:
        return 0.0
    return (
        input_tokens * price.input_per_million_tokens
        + output_tokens * price.output_per_million_tokens
    ) / 1_000_000


class ChatBudget:
    """Today's usage per chat probe, checked against per-probe and per-service caps."""

    def __init__(self) -> None:
        self._day: str | None = None
        self._usage: dict[ProbeKey, Usage] = {}
        self._refused: set[ProbeKey] = set()
        self._probe_caps: dict[ProbeKey, dict[str, float]] = {}
        self._service_caps: dict[str, dict[str, float]] = {}

    def configure(self, config: Config) -> None:
        """Take the caps of a (re)loaded config; today's usage is kept."""
        self._probe_caps = {}
        self._service_caps = {}
        for service_key, service in config.services.items():
            self._service_caps[service_key] = _caps(service.chat_budget)
            for probe_key, probe in service.probes.items():
                if isinstance(probe, ChatProbeBase):
                    self._probe_caps[(service_key, probe_key)] = _caps(probe.budget)

    def _roll(self, now: float) -> None:
        day = utc_day(now)
        if day != self._day:
            self._day = day
            self._usage.clear()
            self._refused.clear()

    def _service_usage(self, service: str) -> Usage:
        # Probes removed from the config today still count against their service.
        total = Usage()
        for (svc, _), usage in self._usage.items():
            if svc == service:
                total.requests += usage.requests
                total.tokens += usage.tokens
                total.cost += usage.cost
        return total

    def remaining(self, service: str, probe: str, now: float) -> dict[str, float]:
        """Per capped resource, the tightest remaining/cap ratio (0..1) of probe and service."""
        self._roll(now)
        own = self._usage.get((service, probe), Usage())
        shared = self._service_usage(service)
        ratios: dict[str, float] = {}
        for usage, caps in (
            (own, self._probe_caps.get((service, probe), {})),
            (shared, self._service_caps.get(service, {})),
        ):
            for resource, cap in caps.items():
                ratio = max(0.0, min(1.0, 1.0 - usage.value(resource) / cap))
                ratios[resource] = min(ratio, ratios.get(resource, 1.0))
        return ratios

    def admit(self, service: str, probe: str, now: float) -> Admission:
        """Count one request if every cap still has room; otherwise refuse until tomorrow."""
        ratios = self.remaining(service, probe, now)
        spent = [resource for resource, ratio in sorted(ratios.items()) if ratio <= 0.0]
        key = (service, probe)
        if spent:
            first = key not in self._refused
            self._refused.add(key)
            return Admission(False, spent[0], first, next_utc_midnight(now))
        self._usage.setdefault(key, Usage()).requests += 1
        return Admission(True)

    def spend(self, service: str, probe: str, now: float, tokens: int, cost: float) -> None:
        """Add what an admitted request used."""
        self._roll(now)
        usage = self._usage.setdefault((service, probe), Usage())
        usage.tokens += tokens
        usage.cost += cost

    def snapshot(self) -> dict[str, Any]:
        """Today's usage as plain data, for the store."""
        return {
            "day": self._day,
            "usage": [
                {
                    "service": service,
                    "probe": probe,
                    "requests": usage.requests,
                    "tokens": usage.tokens,
                    "cost": usage.cost,
                }
                for (service, probe), usage in sorted(self._usage.items())
            ],
        }

    def load(self, snapshot: Mapping[str, Any], now: float) -> None:
        """Restore a snapshot taken today; one from an earlier day is ignored.

        Raises ValueError, changing nothing, when the snapshot is malformed.
        """
        try:
            day = snapshot["day"]
            restored = {
                (str(row["service"]), str(row["probe"])): Usage(
                    int(row["requests"]), int(row["tokens"]), float(row["cost"])
                )
                for row in snapshot["usage"]
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed chat budget snapshot: {exc!r}") from None
        self._roll(now)
        if day == self._day:
            self._usage = restored
