"""Replicated shards: each probe on ``replicas`` instances, the first being hashmod's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from outagewatch.config import Config, ConfigError, ShardConfig, parse_config
from outagewatch.keys import probe_source_key
from outagewatch.lenses.registry import build_sources
from outagewatch.sources import hashmod, replica_shards

PROBES = [f"p{i:03d}" for i in range(120)]


def config(index: int, count: int, replicas: int, shard_all_sources: bool = False) -> Config:
    probes = {p: {"kind": "http", "url": f"http://127.0.0.1:9/{p}"} for p in PROBES}
    page = {"kind": "statuspage", "url": "http://127.0.0.1:9"}
    return parse_config(
        {
            "shard": {
                "index": index,
                "count": count,
                "replicas": replicas,
                "shard_all_sources": shard_all_sources,
            },
            "services": {"svc": {"probes": probes, "status_pages": {"status": page}}},
        }
    )


def runs_on(count: int, replicas: int, shard_all_sources: bool = False) -> dict[str, set[int]]:
    """Source key -> the shards whose daemons run it."""
    where: dict[str, set[int]] = {}
    for index in range(count):
        cfg = config(index, count, replicas, shard_all_sources)
        for source in build_sources(cfg):
            where.setdefault(source.key, set()).add(index)
    return where


def test_one_replica_is_prometheus_hashmod_sharding() -> None:
    where = runs_on(4, 1)
    for probe in PROBES:
        key = probe_source_key("svc", probe)
        assert where[key] == {hashmod(key, 4)}


@pytest.mark.parametrize(("count", "replicas"), [(3, 2), (3, 3), (5, 2), (6, 3), (1, 1)])
def test_each_probe_runs_on_its_hashmod_shard_and_the_next_ones(count: int, replicas: int) -> None:
    where = runs_on(count, replicas)
    for probe in PROBES:
        key = probe_source_key("svc", probe)
        expected = {(hashmod(key, count) + j) % count for j in range(replicas)}
        assert where[key] == expected
        assert replica_shards(key, count, replicas)[0] == hashmod(key, count)
        assert set(replica_shards(key, count, replicas)) == expected
    # Load stays even: every instance runs about replicas/count of the probes.
    per_instance = [sum(i in shards for shards in where.values()) for i in range(count)]
    assert sum(per_instance) == len(PROBES) * replicas + 1  # + the status page, on shard 0
    assert min(per_instance) > 0


def test_sources_not_split_stay_on_shard_0_unless_all_sources_are_split() -> None:
    key = "svc/status/status"
    assert runs_on(3, 2)[key] == {0}
    assert runs_on(3, 2, shard_all_sources=True)[key] == set(replica_shards(key, 3, 2))


def test_more_replicas_than_instances_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        config(0, 2, 3)
    assert caught.value.errors == ["shard: replicas (3) must be at most count (2)"]
    with pytest.raises(ConfigError) as caught:
        config(0, 2, 0)
    assert caught.value.errors == ["shard -> replicas: Input should be greater than or equal to 1"]


def test_each_flag_replaces_its_own_key_of_the_file() -> None:
    shard = ShardConfig(count=6, replicas=2, shard_all_sources=True)
    assert shard.with_flags({"index": 3}, "f.yml") == ShardConfig(
        index=3, count=6, replicas=2, shard_all_sources=True
    )
    assert shard.with_flags({"count": 3, "replicas": 3}, "f.yml").replicas == 3
    with pytest.raises(ConfigError) as caught:
        shard.with_flags({"index": 6}, "f.yml")
    assert caught.value.errors == ["shard (with --shard.index): index (6) must be below count (6)"]


def test_flags_and_file_that_do_not_fit_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "outagewatch.yml"
    path.write_text("shard: {count: 2}\nservices: {}\n")
    args = [sys.executable, "-m", "outagewatch.cli", "run", "--config.file", str(path)]
    done = subprocess.run(
        [*args, "--shard.replicas", "3", "--web.listen-address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 78
    assert "shard (with --shard.replicas): replicas (3) must be at most count (2)" in done.stderr


@pytest.mark.parametrize(("regions", "per_region", "replicas"), [(3, 2, 2), (3, 2, 3), (2, 3, 2)])
def test_indexes_round_the_regions_put_replicas_in_different_regions(
    regions: int, per_region: int, replicas: int
) -> None:
    # deploy/fleet/prometheus-region-replicated.yml: instance i runs in region i % regions.
    count = regions * per_region
    for probe in PROBES:
        shards = replica_shards(probe_source_key("svc", probe), count, replicas)
        assert len({shard % regions for shard in shards}) == replicas
