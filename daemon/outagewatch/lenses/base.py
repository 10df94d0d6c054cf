"""What a lens is: the parts the framework iterates instead of naming lenses.

A lens builds its sources from the config, folds its observations into its own
state, forgets what the config dropped, renders its metric families, adds its
fragment to the status document and supplies its evidence to the disruption
judge. ``lenses/registry.py`` lists them; nothing else names a lens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from outagewatch.detect.disruption import PageEvidence, ProbeEvidence, SpikeEvidence

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from outagewatch.catalogue import MetricSpec
    from outagewatch.clock import Clock
    from outagewatch.config_types import Config, FileChecks, ServiceConfig
    from outagewatch.detect.signals import SignalDetectors
    from outagewatch.history import StatusHistory
    from outagewatch.incidents import IncidentLog
    from outagewatch.lenses.chat.budget import ChatBudget
    from outagewatch.sources.base import Source

S = TypeVar("S")

# Which instances of a sharded fleet run a source: its hashmod shard (and replicas),
# shard 0 only unless `shard_all_sources`, or every instance (our own vantage point).
Placement = Literal["split", "owner", "every"]


class RunRecord(Protocol):
    """What a lens reads of the framework's record of a source's runs
    (``pipeline.SourceRunState`` is one)."""

    @property
    def failing_since(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_success_time(self) -> float | None: ...


class SharedState(Protocol):
    """The parts of the pipeline's state every lens may feed: the history charts,
    the spike detectors and the official incident log."""

    @property
    def history(self) -> StatusHistory: ...
    @property
    def signals(self) -> SignalDetectors: ...
    @property
    def incidents(self) -> IncidentLog: ...


class Folding(Protocol):
    """What a lens may use of the pipeline while it folds an observation
    (``pipeline.Pipeline`` is one): lenses sit below the pipeline and never import it."""

    @property
    def clock(self) -> Clock: ...
    @property
    def log(self) -> Any: ...  # a structlog logger
    @property
    def state(self) -> SharedState: ...


@dataclass(frozen=True)
class Placed:
    """A source and where in the fleet it runs."""

    source: Source
    placement: Placement


@dataclass(frozen=True)
class EvidenceContext:
    """What a lens may read to say what it knows of one service."""

    service: str
    service_config: ServiceConfig
    config: Config
    signals: SignalDetectors
    runs: Mapping[str, RunRecord]
    scheduled: set[str]  # the source keys this instance runs
    started: float  # when the service was first judged


@dataclass(frozen=True)
class Evidence:
    """One lens's part of a service's evidence.

    ``cadence`` says how often this lens's detectors get a point, keyed by the
    cadence names of ``detect.registry.SIGNAL_TABLE`` (probes, chat, ...); the
    framework keeps the shortest.
    """

    probes: tuple[ProbeEvidence, ...] = ()
    pages: tuple[PageEvidence, ...] = ()
    spikes: Mapping[str, SpikeEvidence] = field(default_factory=dict)
    cadence: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PageContext:
    """What a lens may read to render its fragment of one service's status."""

    service: str
    service_config: ServiceConfig
    config: Config
    signals: SignalDetectors
    runs: Mapping[str, RunRecord]
    now: float
    base: str  # the external URL's path: links start with it


class Lens(ABC, Generic[S]):
    """One lens. Subclasses set the class attributes, make their state and override what
    else they have."""

    name: str
    # The config models it reads: in its package, or in config_types.py until moved there.
    config_models: tuple[type, ...] = ()
    # The fields it adds under `services -> <name>`, as pydantic ``create_model`` takes
    # them: ``{"queries": (dict[Name, QueryModel], Field(...))}``; config.py assembles
    # the schema from them (read them back with ``section``).
    service_fields: Mapping[str, tuple[Any, Any]] = {}
    # The same for the top level of the config document.
    config_fields: Mapping[str, tuple[Any, Any]] = {}
    # Deprecated keys still read, by key path, with what to use instead (a warning at load).
    deprecated_keys: Mapping[tuple[str, ...], str] = {}
    # Its discriminated unions (``Annotated[A | B, Field(discriminator="kind")]``): their
    # `kind` tags are left out of error key paths.
    kind_unions: tuple[Any, ...] = ()
    # Observation types this lens folds into its state (its own in its package).
    observations: tuple[type, ...] = ()
    # Its metric families' names, types, help and labels, in the assembled catalogue.
    metrics: tuple[MetricSpec, ...] = ()
    # Source kinds whose failed runs this lens hears of (``run_failed``).
    kinds: frozenset[str] = frozenset()
    # The key of its fragment in each service of /api/v1/status; None: it has none.
    page_key: str | None = None
    # Where its section goes in a service's card on the status page (lowest first).
    card_position = 99

    @abstractmethod
    def new_state(self) -> S:
        """The lens's empty state, kept in the pipeline's and folded into by ``apply``."""

    @staticmethod
    def section(model: Config | ServiceConfig, field: str) -> Any:
        """A field of ``config_fields`` or ``service_fields`` from a validated config or
        service (the assembled models have them)."""
        return getattr(model, field)

    def check_config(self, config: Config) -> None:
        """Raise ValueError (its message starting with the key path) for what its
        section contradicts elsewhere in the config."""

    def check_files(self, config: Config, files: FileChecks) -> None:
        """Check that the files and credentials its config names can be read."""

    def signal_keys(self, config: Config) -> Iterable[tuple[str, str]]:
        """The (service, name) keys of the spike detectors it feeds per configured
        target (traffic queries): the detectors keep these across a reload."""
        return ()

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        """Every enabled source of this lens the config describes."""
        return ()

    def apply(self, pipeline: Folding, state: S, observation: Any) -> None:
        """Fold one observation of one of ``observations`` into the state."""

    def run_failed(self, state: S, key: str, reason: str) -> None:
        """A run of one of this lens's sources observed nothing."""

    def retain(self, state: S, source_keys: set[str], probe_keys: set[tuple[str, str]]) -> None:
        """Forget what the current config no longer has, so it leaves /metrics."""

    def families(self, state: S) -> Iterable[Metric]:
        """This lens's metric families, rendered at scrape time."""
        return ()

    def page(self, state: S, ctx: PageContext) -> Any:
        """This lens's JSON-ready fragment of one service's status."""
        return None

    def card(self, fragment: Any) -> str:
        """This lens's HTML section of a service's card, from its fragment."""
        return ""

    def evidence(self, state: S, ctx: EvidenceContext) -> Generator[None, None, Evidence]:
        """This lens's evidence about one service; may yield to let runs start between slices."""
        return Evidence()
        yield  # a generator, so a lens with many targets can yield between slices


class LensStates:
    """Every registered lens with its state: the lens part of the pipeline's ``State``."""

    def __init__(self, lenses: Iterable[Lens[Any]]) -> None:
        self._lenses = {type(lens): (lens, lens.new_state()) for lens in lenses}

    def of(self, lens: type[Lens[S]]) -> S:
        """The state of a lens, by its class: ``state.lenses.of(ProbeLens)``."""
        state: S = self._lenses[lens][1]
        return state

    def __iter__(self) -> Iterator[tuple[Lens[Any], Any]]:
        return iter(self._lenses.values())
