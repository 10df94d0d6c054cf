"""Every decision of the detector on fixed series is what it was before the cost work."""

from __future__ import annotations

import pytest
from bench import verdict_hash


def test_decisions_unchanged_on_nab_and_synthetic_streams() -> None:
    nab_dir = verdict_hash.default_nab_dir()
    if not (nab_dir / "data" / "realTweets").is_dir():
        pytest.skip(f"no NAB data under {nab_dir}")
    assert verdict_hash.check(nab_dir) == []
