"""The lens registry is the one list of lenses, and docs/architecture.md is true to it."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest

from outagewatch import config as config_module
from outagewatch.clock import FakeClock
from outagewatch.config import Model
from outagewatch.lenses.appstore import AppStoreLens
from outagewatch.lenses.base import Lens
from outagewatch.lenses.registry import LENSES
from outagewatch.lenses.traffic import TrafficLens
from outagewatch.lenses.vantage import VantageLens
from outagewatch.observations import LensObservation, Observation
from outagewatch.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "daemon" / "outagewatch"
LENS_DIR = ROOT / "daemon" / "outagewatch" / "lenses"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _section(title: str) -> str:
    text = ARCHITECTURE.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"docs/architecture.md has no section {title!r}"
    return match.group(1)


def _listed_files(text: str) -> list[str]:
    """The paths a checklist names: the first code span of each `- ` line."""
    return re.findall(r"^- `([^`]+)`", text, re.M)


def test_every_lens_package_is_registered_once() -> None:
    packages = sorted(p.name for p in LENS_DIR.iterdir() if (p / "__init__.py").is_file())
    registered = sorted(type(lens).__module__.split(".")[2] for lens in LENSES)
    assert registered == packages
    assert len({lens.name for lens in LENSES}) == len(LENSES)
    keys = [lens.page_key for lens in LENSES if lens.page_key is not None]
    assert len(set(keys)) == len(keys)


def test_the_traffic_lens_is_one_folder_of_at_most_two_files() -> None:
    files = sorted(p.name for p in (LENS_DIR / "traffic").glob("*.py"))
    assert files == ["__init__.py", "source.py"]


def test_every_observation_type_is_folded_by_a_lens() -> None:
    folded = {kind for lens in LENSES for kind in lens.observations}
    shared = set(typing.get_args(Observation)) - {LensObservation}
    own = {kind for kind in folded if issubclass(kind, LensObservation)}
    assert folded == shared | own
    # A lens's own observation type lives in its package.
    for lens in LENSES:
        for kind in lens.observations:
            if issubclass(kind, LensObservation):
                assert kind.__module__.startswith(type(lens).__module__), kind


# The lenses whose config models, observation records and metric entries live in
# their package (the others' are still in config_types.py, observations.py, catalogue.py).
SELF_CONTAINED = [TrafficLens(), VantageLens(), AppStoreLens()]


@pytest.mark.parametrize("lens", SELF_CONTAINED, ids=lambda lens: lens.name)
def test_a_self_contained_lens_names_appear_only_in_its_package_and_the_registry(
    lens: Lens[Any],
) -> None:
    """Its config models, observations and metric names are its own: adding a lens like
    it touches its package and one line of the registry, nothing else of the daemon."""
    names = [
        *(model.__name__ for model in lens.config_models),
        *(kind.__name__ for kind in lens.observations),
        *(spec.name for spec in lens.metrics),
    ]
    assert lens.config_models and lens.observations and lens.metrics
    if isinstance(lens, TrafficLens):
        names.append("TrafficLens")  # named nowhere but the registry
    own = PACKAGE / "lenses" / lens.name
    allowed = {*own.glob("*.py"), PACKAGE / "lenses" / "registry.py"}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed:
            continue
        text = path.read_text()
        for name in names:
            assert name not in text, f"{path.relative_to(ROOT)} names {name}"


@pytest.mark.parametrize("lens", SELF_CONTAINED, ids=lambda lens: lens.name)
def test_a_self_contained_lens_is_assembled_into_schema_and_catalogue(lens: Lens[Any]) -> None:
    from outagewatch.config import Config, ServiceConfig
    from outagewatch.lenses.registry import CATALOGUE

    assert set(lens.service_fields) <= set(ServiceConfig.model_fields)
    assert set(lens.config_fields) <= set(Config.model_fields)
    assert lens.service_fields or lens.config_fields
    for spec in lens.metrics:
        assert CATALOGUE[spec.name] is spec


def test_the_traffic_lens_says_which_detectors_to_keep() -> None:
    from outagewatch.config import parse_config

    lens = TrafficLens()
    config = parse_config(
        {"services": {"claude": {"traffic": {"requests": {"url": "http://x:9090", "query": "up"}}}}}
    )
    assert list(lens.signal_keys(config)) == [("claude", "requests")]


def test_each_lens_state_is_its_own() -> None:
    pipeline = Pipeline(FakeClock(0.0))
    states = [state for _, state in pipeline.state.lenses]
    assert len({id(state) for state in states}) == len(LENSES)
    for lens in LENSES:
        assert pipeline.state.lenses.of(type(lens)) is dict(pipeline.state.lenses)[lens]


def test_lenses_name_the_config_models_and_union_tags_they_read() -> None:
    named = {model for lens in LENSES for model in lens.config_models}
    assert named and all(issubclass(model, Model) for model in named)
    # Every `kind` a config union accepts belongs to a lens that names its model.
    kinds = {
        tag
        for model in named
        if "kind" in model.model_fields
        for tag in typing.get_args(model.model_fields["kind"].annotation)
    }
    assert kinds >= config_module._UNION_TAGS


@pytest.mark.parametrize(
    "title",
    ["How to add a lens", "How to add a signal", "How to add a metric", "How to add an alert"],
)
def test_checklists_name_files_that_exist(title: str) -> None:
    files = _listed_files(_section(title))
    assert files, f"{title}: no files listed"
    for path in files:
        resolved = ROOT / path.replace("<lens>", "traffic")
        assert resolved.is_file(), f"{title}: {path} does not exist"


def test_adding_a_lens_is_three_code_files_a_signal_and_a_metric_two() -> None:
    lens_files = _listed_files(_section("How to add a lens"))
    assert len(lens_files) <= 3
    assert all(path.startswith("daemon/outagewatch/lenses/") for path in lens_files)
    assert len(_listed_files(_section("How to add a metric"))) <= 2
    signal = _section("How to add a signal").split("A new kind of")[0]
    assert len(_listed_files(signal)) <= 2


def test_the_registry_table_lists_every_lens() -> None:
    parts = _section("The parts")
    for lens in LENSES:
        assert f"| {lens.name} | `lenses/{type(lens).__module__.split('.')[2]}/` |" in parts


def test_the_lens_interface_table_names_real_members() -> None:
    rows = re.findall(r"^\| (`[^|]+) \|", _section("The registry"), re.M)[1:]  # past the head
    names = [name for cell in rows for name in re.findall(r"`(\w+)`", cell)]
    assert names
    for name in names:
        assert hasattr(Lens, name) or name in Lens.__annotations__, name


def test_two_lenses_claiming_one_config_key_stop_the_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config_module, "LENSES", (*LENSES, TrafficLens()))
    with pytest.raises(TypeError, match="lens traffic: service_fields key 'traffic' is taken"):
        config_module._service_model()
