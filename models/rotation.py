"""Re-encrypt personal data under the first key of DATA_KEYS (``manage.py rotate-data-key``).

Every encrypted field is listed in ``ENCRYPTED_FIELDS``. A value already under the primary
key is left alone; any other is decrypted with the ring and written back encrypted under the
primary key by a compare-and-set on the old value, one document at a time. So the command
is safe to interrupt and to re-run (it picks up what is left), and a concurrent change of
the same field wins over the rotation (that change is encrypted under the primary already).
The version and outbox are not touched: a rotation is not a change of the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.crypto import DecryptionError, KeyRing, key_id_of
from core.db import get_db

# collection -> encrypted fields (stored as core.crypto's "v1:{kid}:..." strings)
ENCRYPTED_FIELDS: dict[str, tuple[str, ...]] = {
    "users": ("phone_enc", "first_name", "last_name"),
    "orders": ("shipping_address_enc",),
}
# Fields that were stored in clear before they were encrypted: a clear value is encrypted.
CLEAR_BEFORE: frozenset[tuple[str, str]] = frozenset(
    {("users", "first_name"), ("users", "last_name")}
)


@dataclass
class RotationReport:
    rewritten: int = 0
    current: int = 0
    changed_meanwhile: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.unreadable


def rotate_data_key(
    keyring: KeyRing,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> RotationReport:
    """Rewrite every encrypted value not under ``keyring.primary_kid``; at most ``limit``."""
    report = RotationReport()
    db = get_db()
    for collection, fields in ENCRYPTED_FIELDS.items():
        for name in fields:
            cursor = (
                db[collection]
                .find({name: {"$exists": True, "$type": "string"}}, {name: 1})
                .sort("_id", 1)
            )
            for doc in cursor:
                stored = doc[name]
                if not stored:
                    continue
                try:
                    if (collection, name) in CLEAR_BEFORE and not stored.startswith("v1:"):
                        plaintext = stored.encode("utf-8")
                    elif key_id_of(stored) == keyring.primary_kid:
                        report.current += 1
                        continue
                    else:
                        plaintext = keyring.decrypt(stored)
                except DecryptionError as exc:
                    report.unreadable.append(f"{collection}/{doc['_id']}.{name}: {exc}")
                    continue
                if limit is not None and report.rewritten >= limit:
                    return report
                if dry_run:
                    report.rewritten += 1
                    continue
                result = db[collection].update_one(
                    {"_id": doc["_id"], name: stored}, {"$set": {name: keyring.encrypt(plaintext)}}
                )
                if result.modified_count:
                    report.rewritten += 1
                else:
                    report.changed_meanwhile += 1
            if progress is not None:
                progress(f"{collection}.{name}: done")
    return report
