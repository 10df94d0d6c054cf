"""The configs in the docs are configs: every YAML snippet and example file passes
``outagewatch check-config``, and deploy/config/example.yml uses every key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from outagewatch.config import Config, load_config
from outagewatch.config_reference import sections

ROOT = Path(__file__).resolve().parents[2]
OUTAGEWATCH = Path(sys.executable).parent / "outagewatch"
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE = ROOT / "deploy" / "config" / "example.yml"
# A fence may be indented (inside a list item); its body is, by as much.
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.M | re.S)


def yaml_blocks(page: Path) -> Iterator[tuple[int, str]]:
    """Fenced ```yaml blocks of a page, with the line each starts on."""
    text = page.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        if match.group(2) in ("yaml", "yml"):
            yield text.count("\n", 0, match.start()) + 1, textwrap.dedent(match.group(3))


def is_outagewatch_config(body: str) -> bool:
    """By shape: a mapping with at least one of the config's top-level keys."""
    data = yaml.safe_load(body)
    return isinstance(data, dict) and any(key in Config.model_fields for key in data)


def config_snippets() -> list[tuple[str, str]]:
    found = []
    for page in DOCS:
        for line, body in yaml_blocks(page):
            if is_outagewatch_config(body):
                found.append((f"{page.relative_to(ROOT)}:{line}", body))
    return found


def credentials_for(body: str, directory: Path) -> dict[str, str]:
    """What systemd's LoadCredential= would hand over: a file per credential named."""
    directory.mkdir(exist_ok=True)
    for name in re.findall(r"_credential: *([\w.-]+)", body):
        (directory / name).write_text("dummy-secret-for-check-config\n", encoding="utf-8")
    return {**os.environ, "CREDENTIALS_DIRECTORY": str(directory)}


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = credentials_for(path.read_text(encoding="utf-8"), path.parent / "credentials")
    return subprocess.run(
        [str(OUTAGEWATCH), "check-config", "--config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_the_docs_hold_config_snippets() -> None:
    where = {name.split(":")[0] for name, _ in config_snippets()}
    assert {"docs/reports.md", "docs/appstore.md", "docs/status-pages.md"} <= where


@pytest.mark.parametrize(("where", "body"), config_snippets(), ids=lambda v: str(v)[:40])
def test_every_config_snippet_in_the_docs_passes_check_config(
    where: str, body: str, tmp_path: Path
) -> None:
    path = tmp_path / "snippet.yml"
    path.write_text(body, encoding="utf-8")
    result = check_config(path)
    assert result.returncode == 0, f"{where}: {result.stderr}"


@pytest.mark.parametrize("name", ["example.yml", "outagewatch.yml"])
def test_shipped_configs_pass_check_config(name: str) -> None:
    result = check_config(ROOT / "deploy" / "config" / name)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_catches_a_wrong_key_in_a_snippet(tmp_path: Path) -> None:
    # The issue 15 mistake: `credential:` is not a key.
    path = tmp_path / "snippet.yml"
    path.write_text(
        "services:\n  claude:\n    probes:\n      chat:\n        kind: anthropic\n"
        "        model: m\n        credential: anthropic-api-key\n",
        encoding="utf-8",
    )
    result = check_config(path)
    assert result.returncode == 78
    assert "services -> claude -> probes -> chat -> credential: unknown key" in result.stderr


def keys_set(model: BaseModel) -> Iterator[tuple[type[BaseModel], str]]:
    """(model class, key) for every key written in the file, at any depth."""
    for key in model.model_fields_set:
        yield type(model), key
    for key in type(model).model_fields:
        yield from _keys_below(getattr(model, key))


def _keys_below(value: object) -> Iterator[tuple[type[BaseModel], str]]:
    if isinstance(value, BaseModel):
        yield from keys_set(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _keys_below(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _keys_below(item)


def declared_by(model: type[BaseModel], key: str) -> type[BaseModel]:
    """The class that declares a key: a key shared by kinds counts once."""
    for cls in model.__mro__:
        if key in getattr(cls, "__annotations__", {}):
            return cls  # type: ignore[no-any-return]
    return model


def test_example_uses_every_key_and_every_kind() -> None:
    config = load_config(EXAMPLE)
    written_keys = {(declared_by(model, key), key) for model, key in keys_set(config)}
    kinds = {section.kind for section in sections() if section.kind}
    assert kinds <= {getattr(model, "kind", None) for model in _models(config)}
    # Keys that exclude another (api_key_file or api_key_credential, …) are shown
    # commented out: `# key: value`.
    commented = set(re.findall(r"^\s*#\s*(\w+):", EXAMPLE.read_text(encoding="utf-8"), re.M))
    missing = []
    for section in sections():
        for key in section.model.model_fields:
            if (declared_by(section.model, key), key) not in written_keys and key not in commented:
                missing.append(f"{section.title}: {key}")
    assert not missing, "deploy/config/example.yml lacks:\n" + "\n".join(sorted(set(missing)))


def _models(value: object) -> Iterator[BaseModel]:
    if isinstance(value, BaseModel):
        yield value
        for key in type(value).model_fields:
            yield from _models(getattr(value, key))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _models(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _models(item)


def test_one_way_to_give_secrets_in_every_doc_and_the_unit() -> None:
    """Every credential a doc or the example names is one the unit loads, under the
    key the config takes; no doc teaches another way (issue 15)."""
    unit = (ROOT / "deploy" / "systemd" / "outagewatch.service").read_text(encoding="utf-8")
    loaded = set(re.findall(r"^LoadCredential=([^:\s]+)$", unit, re.M))
    assert {"anthropic-api-key", "report-tokens", "report-hash-secret"} <= loaded
    pages = [*DOCS, EXAMPLE, ROOT / "deploy" / "systemd" / "outagewatch.service"]
    for page in pages:
        if page.name == "configuration.md":
            continue
        text = page.read_text(encoding="utf-8")
        named = re.findall(r"(?:api_key|tokens|hash_secret)_credential: ([\w.:-]+)", text)
        assert set(named) <= loaded, (page.name, set(named) - loaded)
        # `credential:` is no key (issue 15): neither as YAML nor quoted in prose.
        assert not re.search(r"(^\s*#?\s*|`)credential:", text, re.M), page.name
        assert "report-hash-key" not in text, page.name
        # A credential's file lives in /etc/credstore, not behind a path in the unit.
        assert not re.search(r"LoadCredential=[\w.-]+:/", text), page.name


def test_key_paths_named_in_the_docs_exist() -> None:
    """`reports.hash_secret_credential`, `services.<service>.chat_budget`, …: each a key."""

    def normal(path: str) -> str:
        return re.sub(r"<[^>]*>", "<>", path).replace("[]", "")

    known = set()
    for section in sections():
        known.add(normal(section.path))
        known.update(normal(f"{section.path}.{key}") for key in section.model.model_fields)
    tops = "|".join(Config.model_fields)
    pattern = re.compile(rf"`((?:{tops})\.[\w<>.]+)`")
    for page in [*DOCS, ROOT / "deploy" / "fleet" / "README.md"]:
        if page.name == "configuration.md":
            continue
        for path in pattern.findall(page.read_text(encoding="utf-8")):
            if path.endswith(".py"):
                continue
            assert normal(path) in known, f"{page.relative_to(ROOT)}: `{path}` is not a key"


def test_keys_in_the_docs_key_tables_exist() -> None:
    """Tables of keys and defaults (`| key | … default |`) list config keys: real ones."""
    fields = {key for section in sections() for key in section.model.model_fields}
    for page in DOCS:
        if page.name == "configuration.md":
            continue
        in_table = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if re.match(r"\|\s*(key|field)\b", line) and "default" in line:
                in_table = True
                continue
            if not line.startswith("|"):
                in_table = False
            elif in_table and not line.startswith("|-"):
                first = line.split("|")[1]
                for key in re.findall(r"`([a-z_]+)`", first):
                    assert key in fields, f"{page.relative_to(ROOT)}: `{key}` is not a key"
