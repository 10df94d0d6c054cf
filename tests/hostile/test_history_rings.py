"""Chart history under arbitrary run times: out of order, far apart, bursts in one
minute, times before the ring's oldest slot. The rings never grow, never crash,
and every point they give is inside what was fed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.history import REPORT_BUCKET, TTFT_SLOT, StatusHistory, ring_slots
from outagewatch.observations import ChatStats, ProbeResult

T0 = 1_700_000_000.0
WINDOW = 3600.0

runs = st.lists(
    st.tuples(
        st.floats(min_value=-3 * WINDOW, max_value=3 * WINDOW),  # offset from T0
        st.sampled_from([True, False, None]),
        st.floats(min_value=0.0, max_value=120.0),  # TTFT seconds
        st.sampled_from(["a", "b"]),
    ),
    max_size=300,
)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(runs)
def test_rings_stay_bounded_and_truthful(fed: list[tuple[float, bool | None, float, str]]) -> None:
    history = StatusHistory(window=WINDOW)
    for offset, success, ttft, probe in fed:
        chat = ChatStats("ok", ttft_seconds=ttft)
        history.probe(ProbeResult("s", probe, "anthropic", T0 + offset, success, 1.0, chat=chat))
    times = [T0 + offset for offset, *_ in fed]

    success = history.success_percent("s", 0.0)
    assert len(success) <= ring_slots(WINDOW, REPORT_BUCKET)
    assert [t for t, _ in success] == sorted({t for t, _ in success})
    assert all(0.0 <= percent <= 100.0 for _, percent in success)
    conclusive = [T0 + o for o, s, *_ in fed if s is not None]
    if conclusive:  # the newest bucket fed is always held
        newest = (int(max(conclusive) // REPORT_BUCKET) + 0.5) * REPORT_BUCKET
        assert success[-1][0] == newest
    for probe, points in history.ttft_points("s", 0.0).items():
        assert len(points) <= ring_slots(WINDOW, TTFT_SLOT)
        assert [t for t, _ in points] == sorted(t for t, _ in points)
        fed_times = {T0 + o for o, _, _, p in fed if p == probe}
        assert {t for t, _ in points} <= fed_times
        assert all(0.0 <= ttft <= 120.0 for _, ttft in points)
        assert len({int(t // TTFT_SLOT) for t, _ in points}) == len(points)  # one per minute
    if times:
        assert history.ttft_points("s", max(times) + 1) == {
            p: [] for p in history.ttft_points("s", 0.0)
        }
