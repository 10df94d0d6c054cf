"""Hostile configs (issue 16, rows 3, 6 and 21): every one is refused with a key path
or a line, exit 78 and no traceback, by check-config and run alike."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outagewatch.config import EX_CONFIG, Config, ConfigError, load_config, parse_config

from ..daemon_process import free_port

PROBE = "services:\n  claude:\n    probes:\n      api:\n        kind: http\n"


def probe(**fields: str) -> bytes:
    """A config with one http probe; ``fields`` are its YAML lines (``url`` has a default)."""
    fields.setdefault("url", "http://127.0.0.1:9/")
    return (PROBE + "".join(f"        {k}: {v}\n" for k, v in fields.items())).encode()


API = "services -> claude -> probes -> api"

# name: (file bytes, what the one-line error must contain)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "interval-nan": (probe(interval=".nan"), f"{API} -> interval: "),
    "interval-inf": (probe(interval=".inf"), f"{API} -> interval: "),
    "timeout-minus-inf": (probe(timeout="-.inf"), f"{API} -> timeout: "),
    "evaluate-interval-nan": (b"disruption: {evaluate_interval: .nan}\n", "evaluate_interval"),
    "jitter-nan": (b"scheduler: {jitter_ratio: .nan}\n", "scheduler -> jitter_ratio"),
    "detection-inf": (
        b"detection: {z_alarm: .inf}\n",
        "detection -> z_alarm: must be a finite number",
    ),
    "duration-400-digits": (probe(interval="1" * 400 + "s"), f"{API} -> interval: invalid"),
    "duration-400-digit-number": (probe(interval="9" * 400), f"{API} -> interval: "),
    "integer-5000-digits": (b"scheduler: {max_concurrency: " + b"9" * 5000 + b"}\n", "YAML"),
    "huge-integer": (
        b"scheduler: {max_concurrency: " + b"9" * 300 + b"}\n",
        "scheduler -> max_concurrency: number too large",
    ),
    "port-99999": (probe(url="http://127.0.0.1:99999/"), f"{API} -> url: invalid URL"),
    "port-0": (probe(url="http://127.0.0.1:0/"), f"{API} -> url: invalid URL"),
    "ipv6-unclosed": (probe(url="'http://[::1/'"), f"{API} -> url: invalid URL"),
    "ipv6-not-an-address": (probe(url="'http://[zz::1]/'"), f"{API} -> url: invalid URL"),
    "label-300-chars": (probe(url=f"https://{'a' * 300}.example/"), "at most 63"),
    "host-300-chars": (
        probe(url="https://" + ".".join(["abcdefghij"] * 30) + "/"),
        "host longer than 253",
    ),
    "interval-0.001ms": (probe(interval="0.001ms"), f"{API} -> interval: "),
    "interval-1ms": (probe(interval="1ms", timeout="1ms"), "at least 100ms"),
    "invalid-utf8": (probe() + b"# caf\xe9\n", "not valid UTF-8 at line 7"),
    "utf16": ("services: {}\n".encode("utf-16"), "UTF-16"),
    "utf16-without-bom": ("services: {}\n".encode("utf-16-le"), "NUL byte at line 1"),
    "control-character": (b'a: "\x01"\n', "line 1, column 5: control character 0x01"),
    "deep-3000": (b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested deeper than 64"),
    "deep-mapping": (b"".join(b"  " * i + b"k:\n" for i in range(200)), "nested deeper than 64"),
    "billion-laughs": (
        b"x-a: &a [1,1,1,1,1,1,1,1,1,1]\n"
        + b"".join(
            f"x-{c}: &{c} [{','.join(['*' + p] * 10)}]\n".encode()
            for p, c in zip("abcdefg", "bcdefgh", strict=True)
        )
        + b"services: {claude: {display_name: *h}}\n",
        "expands to more than",
    ),
    "key-a-list": (b"? [a, b]\n: 1\n", "a key must be a plain value"),
    "missing-tls-ca-file": (
        probe(tls_ca_file="/nonexistent/ca.pem"),
        f"{API} -> tls_ca_file: cannot read /nonexistent/ca.pem: No such file",
    ),
    "missing-api-key-file": (
        b"services: {claude: {probes: {chat: {kind: anthropic, model: m, "
        b"api_key_file: /nonexistent/key}}}}\n",
        "services -> claude -> probes -> chat -> api_key_file: cannot read /nonexistent/key",
    ),
    "missing-tokens-file": (
        b"reports: {tokens_file: /nonexistent/tokens}\n",
        "reports -> tokens_file: cannot read /nonexistent/tokens",
    ),
}


def _run_both(path: Path, cwd: Path) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    cli = [sys.executable, "-m", "outagewatch.cli"]
    check = subprocess.Popen(
        [*cli, "check-config", "--config.file", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = subprocess.Popen(
        [
            *cli,
            "run",
            "--config.file",
            str(path),
            "--web.listen-address",
            f"127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    return check, run


def test_check_config_and_run_agree_on_every_hostile_config(tmp_path: Path) -> None:
    names = list(HOSTILE)
    for batch in (names[i : i + 4] for i in range(0, len(names), 4)):  # 8 processes at a time
        started = {}
        for name in batch:
            path = tmp_path / f"{name}.yml"
            path.write_bytes(HOSTILE[name][0])
            workdir = tmp_path / name
            workdir.mkdir()
            started[name] = _run_both(path, workdir)
        for name, (check, run) in started.items():
            try:
                check_out, check_err = check.communicate(timeout=120)
                _, run_err = run.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                check.kill()
                run.kill()
                raise AssertionError(f"{name}: still running after 120 s (run started?)") from None
            expected = HOSTILE[name][1]
            assert check.returncode == EX_CONFIG, (name, check_out, check_err)
            assert run.returncode == EX_CONFIG, (name, run_err)
            for err in (check_err, run_err):
                assert "Traceback" not in err, (name, err)
                lines = err.splitlines()
                assert lines[0].startswith("invalid configuration in "), (name, err)
                assert any(expected in line for line in lines[1:]), (name, expected, err)
                assert all(len(line) < 400 for line in lines), (name, err)


def test_a_config_check_config_passes_is_one_run_starts(tmp_path: Path) -> None:
    """The other half of agreeing: a valid config with a CA file is accepted and runs."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    path = tmp_path / "ok.yml"
    path.write_bytes(
        probe(
            url="'https://[::1]:9/'",
            tls_ca_file=str(ca_file),
            interval="100ms",
            timeout="1ms",
        )
    )
    check, run = _run_both(path, tmp_path)
    _, err = check.communicate(timeout=60)
    assert check.returncode == 0, err
    try:
        run.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass  # still running: it started
    else:
        raise AssertionError(f"run exited {run.returncode}: {run.communicate()[1]}")
    finally:
        run.terminate()
        run.communicate(timeout=20)


def test_a_ca_file_that_is_no_certificate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    path = tmp_path / "c.yml"
    path.write_bytes(probe(tls_ca_file=str(bad)))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [
        f"{API} -> tls_ca_file: {bad} holds no usable PEM certificates "
        f"{caught.value.errors[0].split('certificates ', 1)[1]}"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1]:8443/v1",
        "http://127.0.0.1:65535/",
        "https://bücher.example/",
        "https://status.example.com./",
        "https://user:pass@api.example.com/",
        "https://" + "a" * 63 + ".example/",
    ],
)
def test_good_urls_still_pass(url: str) -> None:
    parse_config({"services": {"s": {"probes": {"p": {"kind": "http", "url": url}}}}})


def test_credential_without_credentials_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_bytes(b"reports: {tokens_credential: report-tokens}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.errors == [
        "reports -> tokens_credential: credential 'report-tokens' needs $CREDENTIALS_DIRECTORY"
    ]
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "report-tokens").write_text("t\n")
    load_config(path, environ={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})


# -- property-based: any input gives a Config or a ConfigError, nothing else ---------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["30s", "0.001ms", "1h30m", ".inf", "http://[::1/", "https://a:99999/"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    ["interval", "timeout", "url", "kind", "headers", "tls_ca_file", "valid_status_codes", "x"]
)
_PROBES = st.dictionaries(_KEYS, st.one_of(_VALUES, st.sampled_from(["http", "openai"])))
_DOCUMENTS = st.one_of(
    _VALUES,
    st.fixed_dictionaries(
        {
            "services": st.dictionaries(
                st.text(max_size=8),
                st.fixed_dictionaries(
                    {"probes": st.dictionaries(st.text(max_size=8), _PROBES, max_size=2)}
                ),
                max_size=2,
            )
        },
        optional={
            "scheduler": st.dictionaries(
                st.sampled_from(["max_concurrency", "jitter_ratio", "shutdown_grace"]), _SCALARS
            ),
            "disruption": st.dictionaries(
                st.sampled_from(["evaluate_interval", "stale_intervals", "history"]), _SCALARS
            ),
            "detection": st.dictionaries(st.sampled_from(["z_alarm", "warmup_s"]), _SCALARS),
        },
    ),
)


def _assert_config_or_error(call: Any) -> None:
    try:
        config = call()
    except ConfigError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        return
    assert isinstance(config, Config)
    for value in (config.disruption.evaluate_interval, config.scheduler.jitter_ratio):
        assert math.isfinite(value)
    for service in config.services.values():
        for p in service.probes.values():
            assert math.isfinite(p.interval) and p.interval >= 0.1
            assert math.isfinite(p.timeout) and p.timeout >= 0.001


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_DOCUMENTS)
def test_any_yaml_value_gives_a_config_or_a_config_error(document: Any) -> None:
    _assert_config_or_error(lambda: parse_config(document))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), _DOCUMENTS.map(lambda d: yaml.safe_dump(d).encode())))
def test_any_bytes_give_a_config_or_a_config_error(data: bytes) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".yml") as file:
        file.write(data)
        file.flush()
        _assert_config_or_error(lambda: load_config(file.name, environ={}))
