"""The official incidents outagewatch has seen, kept for detection lead time.

Every incident a status page shows open is remembered with when it started,
when the page published it, when we first saw it and when it was resolved.
``snapshot()``/``load()`` turn the log into plain rows and back, so a store can
keep it across restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from outagewatch.observations import IMPACT_LEVELS, StatusSnapshot


@dataclass
class IncidentRecord:
    """One official incident of one page of a service. Times are epoch seconds."""

    service: str
    page: str
    id: str
    name: str
    impact: str
    start: float | None
    created: float | None
    first_seen: float
    resolved: float | None = None


_FIELDS = {f.name for f in fields(IncidentRecord)}
_TEXT = ("service", "page", "id", "name", "impact")
_TIMES = ("start", "created", "resolved")


class IncidentLog:
    """Incidents by (service, page, id), at most ``limit``: the oldest resolved go first."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._records: dict[tuple[str, str, str], IncidentRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, service: str, page: str, incident_id: str) -> IncidentRecord | None:
        return self._records.get((service, page, incident_id))

    def records(self, service: str | None = None) -> list[IncidentRecord]:
        """Records in the order first seen, optionally of one service."""
        return [r for r in self._records.values() if service is None or r.service == service]

    def observe(
        self, snapshot: StatusSnapshot
    ) -> tuple[list[IncidentRecord], list[IncidentRecord]]:
        """Apply one page reading; returns (newly opened, newly resolved) records.

        An incident is resolved when the page marks it so (at the page's resolve
        time when it gives one) or when it leaves the page's open set (at the
        snapshot's time), unless the reading dropped open incidents past its cap:
        then leaving the kept set says nothing. The impact kept is the worst seen.
        """
        opened: list[IncidentRecord] = []
        resolved: list[IncidentRecord] = []
        open_ids = set()
        for incident in snapshot.incidents:
            key = (snapshot.service, snapshot.page, incident.id)
            record = self._records.get(key)
            if incident.open:
                open_ids.add(incident.id)
                if record is None:
                    record = self._records[key] = IncidentRecord(
                        service=snapshot.service,
                        page=snapshot.page,
                        id=incident.id,
                        name=incident.name,
                        impact=incident.impact,
                        start=incident.start,
                        created=incident.created,
                        first_seen=snapshot.time,
                    )
                    opened.append(record)
                elif record.resolved is not None:  # reopened by the provider
                    record.resolved = None
                    opened.append(record)
                record.name = incident.name or record.name
                if IMPACT_LEVELS.get(incident.impact, 0) > IMPACT_LEVELS.get(record.impact, 0):
                    record.impact = incident.impact
            elif record is not None and record.resolved is None:
                record.resolved = incident.resolved or snapshot.time
                resolved.append(record)
        complete = snapshot.open_incidents_dropped == 0
        for record in self._records.values():
            if (
                complete
                and record.service == snapshot.service
                and record.page == snapshot.page
                and record.resolved is None
                and record.id not in open_ids
            ):
                record.resolved = snapshot.time
                resolved.append(record)
        self._trim()
        return opened, resolved

    def _trim(self) -> None:
        """Past ``limit``, drop the oldest resolved records, then the oldest open ones
        (a page listing more open incidents than its cap keeps can leave many open)."""
        excess = len(self._records) - self.limit
        if excess <= 0:
            return
        oldest = sorted(self._records.values(), key=lambda r: (r.resolved is None, r.first_seen))
        for record in oldest[:excess]:
            del self._records[(record.service, record.page, record.id)]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every record as a plain, JSON-ready row."""
        return [asdict(record) for record in self._records.values()]

    def load(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace the log with rows from ``snapshot()``; ValueError names a bad row."""
        records: dict[tuple[str, str, str], IncidentRecord] = {}
        for number, row in enumerate(rows, start=1):
            record = _record(row, number)
            records[(record.service, record.page, record.id)] = record
        self._records = records
        self._trim()


def _record(row: Mapping[str, Any], number: int) -> IncidentRecord:
    unknown = set(row) - _FIELDS
    if unknown:
        raise ValueError(f"incident row {number}: unknown fields {sorted(unknown)}")
    for name in _TEXT:
        if not isinstance(row.get(name), str):
            raise ValueError(f"incident row {number}: {name} must be text")
    for name in (*_TIMES, "first_seen"):
        value = row.get(name)
        optional = name != "first_seen"
        if isinstance(value, bool) or not (
            isinstance(value, int | float) or (optional and value is None)
        ):
            raise ValueError(f"incident row {number}: {name} must be a time in seconds")
    return IncidentRecord(
        service=row["service"],
        page=row["page"],
        id=row["id"],
        name=row["name"],
        impact=row["impact"],
        start=row.get("start"),
        created=row.get("created"),
        first_seen=row["first_seen"],
        resolved=row.get("resolved"),
    )
