"""manage.py rotate-data-key against real SecantusDB: every encrypted value ends under the
first key of DATA_KEYS, an interrupted run resumes, nothing is lost."""

from __future__ import annotations

import base64

from bson import ObjectId
from typer.testing import CliRunner

from core.settings import DEV_DATA_KEYS

# The test profile's key (names are encrypted under the app's DATA_KEYS) is the "old" one.
OLD = DEV_DATA_KEYS
NEW = "new2:" + base64.b64encode(b"n" * 32).decode()


def test_rotation_rewrites_every_record_and_survives_interruption(clean_data) -> None:
    from core.crypto import KeyRing, decrypt_json, encrypt_json, key_id_of
    from core.db import get_db
    from models.rotation import rotate_data_key
    from models.user import User

    old_ring = KeyRing(OLD)
    users = [
        User.register(
            email=f"rot{i}@example.com",
            password="rotation-pass-1",
            first_name="R",
            last_name="K",
            phone=f"+1555000{i:04d}",
            keyring=old_ring,
        )
        for i in range(5)
    ]
    db = get_db()
    address = {"name": "Ada", "line1": "1 Way", "city": "London", "country": "GB"}
    order_ids = [ObjectId() for _ in range(3)]
    for oid in order_ids:
        db["orders"].insert_one(
            {
                "_id": oid,
                "order_number": f"ROT-{oid}",
                "shipping_address_enc": encrypt_json(address, old_ring),
            }
        )

    rotated_ring = KeyRing(f"{NEW},{OLD}")
    first = rotate_data_key(rotated_ring, limit=3)  # "interrupted" after three records
    assert first.rewritten == 3
    second = rotate_data_key(rotated_ring)
    # 5 phones + 10 names + 3 addresses in all, 3 of them done by the first run.
    assert second.rewritten == 15 and second.current == 3 and second.done
    assert rotate_data_key(rotated_ring).rewritten == 0  # idempotent

    new_only = KeyRing(NEW)
    for i, user in enumerate(users):
        fresh = User.by_id(str(user.id))
        assert key_id_of(fresh.phone_enc) == "new2"
        assert fresh.phone(new_only) == f"+1555000{i:04d}"
        raw = db["users"].find_one({"_id": user.id})
        assert key_id_of(raw["first_name"]) == key_id_of(raw["last_name"]) == "new2"
    for oid in order_ids:
        stored = db["orders"].find_one({"_id": oid})["shipping_address_enc"]
        assert key_id_of(stored) == "new2"
        assert decrypt_json(stored, new_only) == address


def test_rotation_reports_values_it_cannot_read(clean_data) -> None:
    from core.crypto import KeyRing
    from models.rotation import rotate_data_key
    from models.user import User

    User.register(
        email="lost@example.com",
        password="rotation-pass-1",
        first_name="L",
        last_name="K",
        phone="+15551112222",
        keyring=KeyRing(OLD),
    )
    report = rotate_data_key(KeyRing(NEW))  # the old key was dropped too early
    assert not report.done and "unknown data key id 'dev1'" in report.unreadable[0]


def test_rotate_data_key_command(clean_data) -> None:
    import manage
    from models.user import User

    User.register(
        email="cli@example.com",
        password="rotation-pass-1",
        first_name="C",
        last_name="L",
        phone="+15553334444",
    )
    result = CliRunner().invoke(manage.cli, ["rotate-data-key", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "already under 'dev1' 3" in result.output  # phone, first and last name


def test_names_stored_in_clear_before_are_encrypted_by_the_rotation(clean_data) -> None:
    from core.crypto import KeyRing, key_id_of
    from core.db import get_db
    from models.rotation import rotate_data_key
    from models.user import User

    user = User.register(
        email="legacy@example.com", password="rotation-pass-1", first_name="G", last_name="H"
    )
    users = get_db()["users"]
    users.update_one({"_id": user.id}, {"$set": {"first_name": "Grace", "last_name": "Hopper"}})
    assert User.by_id(str(user.id)).first_name == "Grace"  # clear text still reads
    report = rotate_data_key(KeyRing(f"{NEW},{OLD}"))
    assert report.done
    raw = users.find_one({"_id": user.id})
    assert key_id_of(raw["first_name"]) == "new2" and "Grace" not in str(raw)
