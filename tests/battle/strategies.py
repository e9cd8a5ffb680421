"""Hypothesis strategies for battle events: any value each field may hold."""

from __future__ import annotations

from hypothesis import strategies as st

from battle.events import (
    ChaosEvent,
    HeadObservation,
    Outcome,
    Recording,
    RequestEvent,
    ResourceSample,
    SubscriptionEvent,
    SubscriptionKind,
)

times = st.floats(min_value=0, max_value=1e9, allow_nan=False)
ids = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8))
names = st.text(min_size=1, max_size=8)

requests = st.builds(
    RequestEvent,
    scenario=names,
    client=names,
    transport=st.sampled_from(["http", "ws"]),
    method=names,
    sent_at=times,
    answered_at=st.none() | times,
    http_status=st.none() | st.integers(100, 599),
    outcome=st.sampled_from(Outcome),
    sent_id=ids,
    received_id=ids,
    error_code=st.none() | st.integers(-33000, 0),
    error_expected=st.booleans(),
    provider=st.none() | names,
    block=st.none() | st.integers(0, 2**64),
    empty_result=st.booleans(),
)
subscriptions = st.builds(
    SubscriptionEvent,
    client=names,
    subscription=names,
    kind=st.sampled_from(SubscriptionKind),
    number=st.integers(0, 2**64),
    hash=names,
    parent_hash=names,
    received_at=times,
    removed=st.booleans(),
    log_index=st.none() | st.integers(0, 1000),
)
chaos = st.builds(
    ChaosEvent, kind=names, target=st.none() | names, started_at=times, ended_at=st.none() | times
)
heads = st.builds(HeadObservation, client=names, number=st.integers(0, 2**64), at=times)
resources = st.builds(ResourceSample, rss_bytes=st.integers(0, 2**40), at=times)
events = st.one_of(requests, subscriptions, chaos, heads, resources)

recordings = st.builds(
    Recording,
    requests=st.lists(requests, max_size=20).map(tuple),
    subscriptions=st.lists(subscriptions, max_size=20).map(tuple),
    chaos=st.lists(chaos, max_size=4).map(tuple),
    heads=st.lists(heads, max_size=20).map(tuple),
    resources=st.lists(resources, max_size=5).map(tuple),
)
