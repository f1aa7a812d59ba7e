"""The events API over real Mongo and Redis: filters, pagination, visibility, stats, health,
correlation chains, replay dry runs, dead letters and notifications. Events are written to
the store directly (no worker needed); the flows through the worker are in tests/e2e.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.dead_letter import DeadLetter
from models.event import store_events, timeline_for
from models.notification import Notification
from tests.factories import admin_login, auth, register
from workflows.events import EventType, chain_causation, make_event

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _events_for(user_id: str, count: int, correlation: str = "corr-1", order: str = "ord-1"):
    events = [
        make_event(
            EventType.ORDER_UPDATED if i else EventType.ORDER_CREATED,
            aggregate_id=order,
            aggregate_version=i + 1,
            correlation_id=correlation,
            user_id=user_id,
            occurred_at=T0 + timedelta(minutes=i),
            data={"step": i},
        )
        for i in range(count)
    ]
    return store_events(chain_causation(events, None))


@pytest.fixture
def people(client):
    admin = admin_login(client)
    alice = register(client)
    bob = register(client)
    return admin, alice, bob


def test_list_is_paginated_newest_first_and_customers_see_only_their_own(client, people) -> None:
    admin, alice, bob = people
    _events_for(alice["user"]["id"], 25)
    _events_for(bob["user"]["id"], 3, correlation="corr-bob", order="ord-bob")

    r = client.get("/api/events?limit=10&page=1&type=order.*", headers=auth(alice["token"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pagination"] == {"page": 1, "limit": 10, "total": 25, "pages": 3}
    assert body["results"] == 10
    # A customer's events carry only the data meant for them (not these test markers).
    steps = [e["aggregateVersion"] - 1 for e in body["data"]["events"]]
    assert steps == list(range(24, 14, -1))  # newest first
    assert all(e["data"] == {} and "correlationId" not in e for e in body["data"]["events"])
    last = client.get("/api/events?limit=10&page=3&type=order.*", headers=auth(alice["token"]))
    assert last.json()["results"] == 5
    assert {e["userId"] for e in last.json()["data"]["events"]} == {alice["user"]["id"]}
    # Asking for someone else's events gives nothing, not their events.
    r = client.get(f"/api/events?userId={bob['user']['id']}", headers=auth(alice["token"]))
    assert r.json()["data"]["events"] == []
    # Admins see everyone's, and can filter.
    r = client.get("/api/events?aggregateId=ord-bob", headers=auth(admin["token"]))
    assert r.json()["pagination"]["total"] == 3
    event = r.json()["data"]["events"][0]
    assert set(event) == {
        "eventId",
        "type",
        "aggregateType",
        "aggregateId",
        "aggregateVersion",
        "correlationId",
        "causationId",
        "occurredAt",
        "userId",
        "data",
    }


def test_filters_by_type_correlation_and_time(client, people) -> None:
    admin, alice, _ = people
    _events_for(alice["user"]["id"], 6)
    h = auth(admin["token"])
    assert client.get("/api/events?type=order.created", headers=h).json()["results"] == 1
    assert client.get("/api/events?correlationId=corr-1", headers=h).json()["results"] == 6
    window = "from=2026-01-01T12:02:00Z&to=2026-01-01T12:04:00Z"
    r = client.get(f"/api/events?{window}&aggregateId=ord-1", headers=h)
    assert sorted(e["data"]["step"] for e in r.json()["data"]["events"]) == [2, 3, 4]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("type=order.nonsense", "type"),
        ("type=bogus.*", "type"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("colour=red", "colour"),
    ],
)
def test_bad_filter_is_400_naming_it(client, people, query: str, field: str) -> None:
    _, alice, _ = people
    r = client.get(f"/api/events?{query}", headers=auth(alice["token"]))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert field in {e["field"] for e in body["errors"]}


def test_correlation_chain_oldest_first_with_causation_for_owner_and_admin(client, people) -> None:
    admin, alice, bob = people
    stored = _events_for(alice["user"]["id"], 4, correlation="corr-chain")
    r = client.get("/api/events/correlation/corr-chain", headers=auth(alice["token"]))
    assert r.status_code == 200, r.text
    events = r.json()["data"]["events"]
    assert [e["eventId"] for e in events] == [d["_id"] for d in stored]
    assert events[0]["causationId"] is None
    assert all(b["causationId"] == a["eventId"] for a, b in zip(events, events[1:], strict=False))
    assert events[1]["causationType"] == "order.created"
    assert (
        client.get("/api/events/correlation/corr-chain", headers=auth(bob["token"])).status_code
        == 404
    )
    assert (
        client.get("/api/events/correlation/corr-chain", headers=auth(admin["token"])).status_code
        == 200
    )
    assert (
        client.get("/api/events/correlation/nope", headers=auth(admin["token"])).status_code == 404
    )
    assert [e["eventId"] for e in timeline_for("ord-1")] == [d["_id"] for d in stored]


def test_stats_are_admin_only_and_count(client, people) -> None:
    admin, alice, _ = people
    _events_for(alice["user"]["id"], 5)
    assert client.get("/api/events/stats", headers=auth(alice["token"])).status_code == 403
    r = client.get("/api/events/stats", headers=auth(admin["token"]))
    assert r.status_code == 200, r.text
    stats = r.json()["data"]["stats"]
    assert stats["countsByType"]["order.updated"] == 4
    assert stats["countsByType"]["order.created"] == 1
    assert stats["deadLetters"]["unresolved"] == 0
    # Users registered through the API wait in their outbox until a worker dispatches them.
    assert stats["outbox"]["pending"] >= 2 and stats["outbox"]["oldestAgeSeconds"] >= 0
    assert {"notifications", "order_stats", "low_stock_alerts"} <= set(stats["handlers"])


def test_health_is_public_and_names_its_checks(client) -> None:
    r = client.get("/api/events/health")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "ok"
    assert {data["checks"][k]["status"] for k in ("bus", "store", "handlers")} == {"ok"}


def test_api_start_is_recorded_as_a_system_event(client, people) -> None:
    admin, _, _ = people
    r = client.get("/api/events?type=system.startup", headers=auth(admin["token"]))
    starts = r.json()["data"]["events"]
    assert starts and starts[0]["aggregateId"].startswith("api:")
    assert starts[0]["aggregateType"] == "system" and starts[0]["data"]["component"] == "api"


def test_replay_dry_run_counts_runs_per_handler(client, people) -> None:
    admin, alice, _ = people
    _events_for(alice["user"]["id"], 5, correlation="corr-replay")
    h = auth(admin["token"])
    r = client.post(
        "/api/events/replay", json={"correlationId": "corr-replay", "dryRun": True}, headers=h
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["dryRun"] is True and data["matched"] == 5
    # notifications wants order.created only here; order_stats wants all five.
    assert data["handlerRuns"]["notifications"] == 1
    assert data["handlerRuns"]["order_stats"] == 5
    r = client.post(
        "/api/events/replay",
        json={"type": "order.updated", "handlers": ["order_stats"], "dryRun": True},
        headers=h,
    )
    assert r.json()["data"]["handlerRuns"] == {"order_stats": 4}
    for body, field in (
        ({"dryRun": True}, "filter"),
        ({"type": "nope", "dryRun": True}, "type"),
        ({"type": "order.*", "handlers": ["ghost"]}, "handlers"),
        ({"type": "order.*", "colour": "red"}, "colour"),
    ):
        r = client.post("/api/events/replay", json=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert field in {e["field"] for e in r.json()["errors"]}
    r = client.post(
        "/api/events/replay", json={"type": "order.*", "dryRun": True}, headers=auth(alice["token"])
    )
    assert r.status_code == 403


def test_dead_letters_list_and_retry(client, people) -> None:
    admin, alice, _ = people
    dead = DeadLetter.for_handler("notifications", "evt-1", error="boom", attempts=6)
    again = DeadLetter.for_handler("notifications", "evt-1", error="boom again", attempts=6)
    assert again.id == dead.id and again.failures == 2  # one record per unit of work
    h = auth(admin["token"])
    r = client.get("/api/events/dead-letters", headers=h)
    assert r.status_code == 200
    [listed] = r.json()["data"]["deadLetters"]
    assert listed["error"] == "boom again" and listed["resolved"] is False
    assert client.get("/api/events/dead-letters", headers=auth(alice["token"])).status_code == 403
    r = client.post(f"/api/events/dead-letters/{listed['id']}/retry", headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["data"]["deadLetter"]["retries"] == 1
    assert client.post("/api/events/dead-letters/nope/retry", headers=h).status_code == 404


def test_notifications_newest_first_paginated_and_personal(client, people) -> None:
    _, alice, bob = people
    uid = alice["user"]["id"]
    for i in range(3):
        Notification.add_many(
            [{"userId": uid, "eventId": f"e{i}", "type": "order.created", "title": f"n{i}"}]
        )
    # The same event again is not a second notification.
    Notification.add_many([{"userId": uid, "eventId": "e2", "type": "order.created", "title": "x"}])
    r = client.get("/api/notifications?limit=2", headers=auth(alice["token"]))
    assert r.status_code == 200
    body = r.json()
    assert body["pagination"]["total"] == 3 and body["results"] == 2
    newest = body["data"]["notifications"][0]
    assert newest["title"] == "n2" and newest["read"] is False
    r = client.post(f"/api/notifications/{newest['id']}/read", headers=auth(alice["token"]))
    assert r.status_code == 200 and r.json()["data"]["notification"]["read"] is True
    unread = client.get("/api/notifications?unread=true", headers=auth(alice["token"])).json()
    assert unread["pagination"]["total"] == 2
    r = client.post(f"/api/notifications/{newest['id']}/read", headers=auth(bob["token"]))
    assert r.status_code == 404
    assert client.get("/api/notifications", headers=auth(bob["token"])).json()["results"] == 0


def test_cli_events_replay_and_redrive(people) -> None:
    from typer.testing import CliRunner

    import manage

    _, alice, _ = people
    _events_for(alice["user"]["id"], 3, correlation="corr-cli")
    DeadLetter.for_handler("order_stats", "evt-cli", error="boom", attempts=6)
    runner = CliRunner()
    shown = runner.invoke(manage.cli, ["events", "--correlation", "corr-cli"])
    assert shown.exit_code == 0, shown.output
    assert "order.created" in shown.output and "3 event(s)" in shown.output
    dry = runner.invoke(manage.cli, ["replay", "--correlation", "corr-cli", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "3 event(s) match" in dry.output and "'order_stats': 3" in dry.output
    assert runner.invoke(manage.cli, ["replay", "--dry-run"]).exit_code != 0
    redrive = runner.invoke(manage.cli, ["redrive-dead-letters"])
    assert redrive.exit_code == 0 and "1 dead letter(s) re-enqueued" in redrive.output
    assert DeadLetter.objects(event_id="evt-cli").first().retries == 1


def test_metrics_report_outbox_lag_and_dead_letters(client, people) -> None:
    DeadLetter.for_handler("order_stats", "evt-metrics", error="boom", attempts=6)
    text = client.get("/metrics").text
    assert 'oms_outbox_pending_events{kind="users"}' in text  # the registrations above
    assert "oms_outbox_oldest_age_seconds" in text
    assert "oms_dead_letters_unresolved 1.0" in text


def test_huge_page_numbers_are_400_not_500(client) -> None:
    """Found by schema fuzzing: a page past Mongo's 8-byte ints used to answer 500."""
    from tests.factories import auth, register

    token = register(client)["token"]
    for path in ("/api/notifications", "/api/events"):
        r = client.get(path, params={"page": 572621818441294455524777000960}, headers=auth(token))
        assert r.status_code == 400, (path, r.text)
        assert r.json()["errors"][0]["field"] == "page"
