"""HTTP semantics shops build on: ETag / If-None-Match / If-Match on orders, and CSV export.

The worker is paused where an ETag must stay put: orders stay as the API stored them, so
their tags change only when the test itself changes the order.
"""

from __future__ import annotations

import csv
import io

from tests.factories import admin_login, auth, create_product, place_order, register


def _order(client, token: str, sku: str = "ETAG-1", quantity: int = 1) -> str:
    r = place_order(client, token, [(sku, quantity)])
    assert r.status_code == 202, r.text
    return r.json()["data"]["order"]["id"]


def test_get_order_etag_and_304(client, paused_worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "ETAG-1")
    customer = register(client)
    order_id = _order(client, customer["token"])
    first = client.get(f"/api/orders/{order_id}", headers=auth(customer["token"]))
    etag = first.headers["ETag"]
    version = first.json()["data"]["order"]["version"]
    assert etag.startswith(f'"{version}-')

    again = client.get(
        f"/api/orders/{order_id}", headers={**auth(customer["token"]), "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag

    # A weak form of the same tag matches too (If-None-Match uses the weak comparison).
    weak = client.get(
        f"/api/orders/{order_id}", headers={**auth(customer["token"]), "If-None-Match": "W/" + etag}
    )
    assert weak.status_code == 304

    # A change to the order changes its tag: the old one no longer answers 304.
    patched = client.patch(
        f"/api/orders/{order_id}", json={"notes": "ring twice"}, headers=auth(customer["token"])
    )
    assert patched.status_code == 200, patched.text
    after = client.get(
        f"/api/orders/{order_id}", headers={**auth(customer["token"]), "If-None-Match": etag}
    )
    assert after.status_code == 200
    assert after.headers["ETag"] != etag
    assert after.json()["data"]["order"]["notes"] == "ring twice"


def test_my_orders_list_answers_304_while_unchanged(client, paused_worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "ETAG-1")
    customer = register(client)
    _order(client, customer["token"])
    first = client.get("/api/orders/my-orders", headers=auth(customer["token"]))
    etag = first.headers["ETag"]
    same = client.get(
        "/api/orders/my-orders", headers={**auth(customer["token"]), "If-None-Match": etag}
    )
    assert same.status_code == 304
    _order(client, customer["token"])
    changed = client.get(
        "/api/orders/my-orders", headers={**auth(customer["token"]), "If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.json()["results"] == 2


def test_if_match_guards_patch_and_delete(client, paused_worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "ETAG-1")
    customer = register(client)
    headers = auth(customer["token"])
    order_id = _order(client, customer["token"])
    etag = client.get(f"/api/orders/{order_id}", headers=headers).headers["ETag"]

    ok = client.patch(
        f"/api/orders/{order_id}", json={"notes": "first"}, headers={**headers, "If-Match": etag}
    )
    assert ok.status_code == 200, ok.text

    # The same (now stale) tag again: 412, and the order keeps the first change.
    stale = client.patch(
        f"/api/orders/{order_id}", json={"notes": "second"}, headers={**headers, "If-Match": etag}
    )
    assert stale.status_code == 412, stale.text
    assert stale.json()["code"] == "PRECONDITION_FAILED"
    order = client.get(f"/api/orders/{order_id}", headers=headers).json()["data"]["order"]
    assert order["notes"] == "first"

    stale_cancel = client.request(
        "DELETE",
        f"/api/orders/{order_id}",
        json={"reason": "changed my mind"},
        headers={**headers, "If-Match": etag},
    )
    assert stale_cancel.status_code == 412
    assert client.get(f"/api/orders/{order_id}", headers=headers).json()["data"]["order"][
        "status"
    ] not in {"cancelled"}

    fresh = client.get(f"/api/orders/{order_id}", headers=headers).headers["ETag"]
    cancelled = client.request(
        "DELETE",
        f"/api/orders/{order_id}",
        json={"reason": "changed my mind"},
        headers={**headers, "If-Match": fresh},
    )
    assert cancelled.status_code == 202, cancelled.text


def test_csv_export_rows_and_totals(client) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "CSV-A", price=1999, stock=50)
    create_product(client, admin["token"], "CSV-B", price=250, stock=50)
    alice, bob = register(client), register(client)
    placed = []
    for who, lines in (
        (alice, [("CSV-A", 2)]),
        (bob, [("CSV-B", 3), ("CSV-A", 1)]),
        (alice, [("CSV-B", 1)]),
    ):
        r = place_order(client, who["token"], lines)
        assert r.status_code == 202, r.text
        placed.append(r.json()["data"]["order"])

    r = client.get("/api/orders/export?format=csv", headers=auth(admin["token"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3
    by_number = {row["orderNumber"]: row for row in rows}
    for order in placed:
        row = by_number[order["orderNumber"]]
        assert int(row["totalCents"]) == order["totalCents"]
        whole, cents = divmod(order["totalCents"], 100)
        assert row["total"] == f"{whole}.{cents:02d}"
        assert row["currency"] == order["currency"]
    assert sum(int(row["totalCents"]) for row in rows) == sum(o["totalCents"] for o in placed)

    # The list's filters apply: only Bob's order.
    only_bob = client.get(
        f"/api/orders/export?userId={bob['user']['id']}", headers=auth(admin["token"])
    )
    assert [row["userId"] for row in csv.DictReader(io.StringIO(only_bob.text))] == [
        bob["user"]["id"]
    ]

    bad = client.get("/api/orders/export?format=xlsx", headers=auth(admin["token"]))
    assert bad.status_code == 400
    customer = client.get("/api/orders/export", headers=auth(alice["token"]))
    assert customer.status_code == 403
