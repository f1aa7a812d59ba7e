"""Users: argon2id passwords, encrypted phone, and an outbox of user.* events.

Every change is one single-document update guarded by ``version`` that also pushes its
event into ``outbox``; the caller then enqueues the outbox dispatch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    NotUniqueError,
    StringField,
)

from core.context import correlation_id_var
from core.crypto import DecryptionError, KeyRing, decrypt_str, encrypt_str
from core.revocation import RevocationStore
from core.security import hash_password, now_ms, verify_password
from core.settings import get_settings
from workflows.events import EventType, make_event

_CAS_ATTEMPTS = 5


class UserRole(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class EmailTaken(Exception):
    """Another account (active or not) already uses this email."""


class WrongPassword(Exception):
    """The current password given for a password change does not match."""


class ExistingAccountNotAdmin(Exception):
    """ensure_admin found a customer account under the admin email and was not told to promote it.

    Whoever registered that email first would otherwise become admin (account squatting).
    """


class ConcurrentUpdate(Exception):
    """The user kept changing under us for every attempt (should not happen in practice)."""


class _Unset:
    pass


UNSET: Any = _Unset()


class EncryptedStringField(StringField):
    """A string stored AES-256-GCM encrypted (core.crypto, the app's DATA_KEYS), read back
    in clear. Length and validation apply to the clear text. A value stored before the field
    was encrypted (clear text) reads as it is; ``manage.py rotate-data-key`` encrypts it.
    Not for fields that are queried: each write encrypts with a fresh nonce."""

    def to_mongo(self, value: Any) -> Any:
        return encrypt_str(value) if isinstance(value, str) and value else value

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("v1:"):
            try:
                return decrypt_str(value)
            except DecryptionError:
                return value
        return value

    def prepare_query_value(self, op: Any, value: Any) -> Any:
        value = super().prepare_query_value(op, value)
        if op == "set" and isinstance(value, str) and value:
            return encrypt_str(value)
        return value


def _revoke_all_tokens(user_id: str, cut_off_ms: int) -> None:
    store = RevocationStore.from_settings(get_settings())
    try:
        store.revoke_all_before(user_id, cut_off_ms)
    finally:
        store.close()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _now() -> datetime:
    # Mongo keeps milliseconds; trimming here keeps in-memory and stored values equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class User(Document):
    meta = {
        "collection": "users",
        "indexes": [
            {"fields": ["email"], "unique": True},
            {"fields": ["stripe_customer_id"], "sparse": True},
            # The outbox sweep looks for documents whose oldest event is old.
            {"fields": ["outbox.occurredAt"], "sparse": True},
        ],
    }

    email = StringField(required=True, max_length=320)
    password_hash = StringField(required=True)
    email_verified_at = DateTimeField(db_field="emailVerifiedAt", null=True)
    first_name = EncryptedStringField(max_length=100, default="")
    last_name = EncryptedStringField(max_length=100, default="")
    phone_enc = StringField()
    role = StringField(required=True, choices=[r.value for r in UserRole], default="customer")
    stripe_customer_id = StringField()
    active = BooleanField(default=True)
    tokens_valid_after = DateTimeField()
    last_login_at = DateTimeField()
    created_at = DateTimeField(required=True)
    updated_at = DateTimeField(required=True)
    outbox = ListField(DictField())
    version = IntField(required=True, default=1)

    # -- lookups ---------------------------------------------------------------------------

    @classmethod
    def by_id(cls, user_id: str) -> User | None:
        try:
            return cls.objects(id=ObjectId(user_id)).first()
        except (InvalidId, TypeError):
            return None

    @classmethod
    def by_email(cls, email: str) -> User | None:
        return cls.objects(email=normalize_email(email)).first()

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN

    # -- events ----------------------------------------------------------------------------

    def _event(self, event_type: EventType, version: int, data: dict[str, Any]) -> dict[str, Any]:
        return make_event(
            event_type,
            aggregate_id=str(self.id),
            aggregate_version=version,
            correlation_id=correlation_id_var.get(),
            user_id=str(self.id),
            data=data,
        )

    def _apply(
        self,
        event_type: EventType,
        data: dict[str, Any],
        set_fields: dict[str, Any],
        unset_fields: tuple[str, ...] = (),
    ) -> None:
        """One guarded update: the change, updated_at, version + 1 and the event together."""
        for _ in range(_CAS_ATTEMPTS):
            version = self.version
            update: dict[str, Any] = {f"set__{k}": v for k, v in set_fields.items()}
            update.update({f"unset__{k}": True for k in unset_fields})
            update["set__updated_at"] = _now()
            update["inc__version"] = 1
            update["push__outbox"] = self._event(event_type, version + 1, data)
            if self.modify({"version": version}, **update):
                return
            self.reload()
        raise ConcurrentUpdate(f"user {self.id} changed during {_CAS_ATTEMPTS} attempts")

    # -- commands --------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        email: str,
        password: str,
        first_name: str,
        last_name: str,
        phone: str | None = None,
        role: UserRole = UserRole.CUSTOMER,
        keyring: KeyRing | None = None,
    ) -> User:
        """Create the account with its user.created event; EmailTaken if the email is used."""
        now = _now()
        user = cls(
            id=ObjectId(),
            email=normalize_email(email),
            password_hash=hash_password(password),
            first_name=first_name,
            last_name=last_name,
            phone_enc=encrypt_str(phone, keyring) if phone else None,
            role=str(role),
            active=True,
            created_at=now,
            updated_at=now,
            version=1,
        )
        user.outbox = [
            # No email: the event store keeps events for years and fans them out.
            user._event(EventType.USER_CREATED, 1, {"role": user.role})
        ]
        try:
            user.save(force_insert=True)
        except NotUniqueError as exc:
            raise EmailTaken(user.email) from exc
        return user

    @classmethod
    def authenticate(cls, email: str, password: str) -> User | None:
        """The active user with these credentials (user.login recorded), else None.

        Unknown email, wrong password and deactivated account cost the same argon2 work.
        """
        user = cls.by_email(email)
        valid, new_hash = verify_password(password, user.password_hash if user else None)
        if user is None or not valid or not user.active:
            return None
        changes: dict[str, Any] = {"last_login_at": _now()}
        if new_hash:
            changes["password_hash"] = new_hash
        user._apply(EventType.USER_LOGIN, {}, changes)
        return user

    def update_profile(
        self,
        *,
        first_name: str | Any = UNSET,
        last_name: str | Any = UNSET,
        phone: str | None | Any = UNSET,
        new_password: str | None = None,
        current_password: str | None = None,
        keyring: KeyRing | None = None,
    ) -> list[str]:
        """Apply the given changes as one user.updated event; returns the changed field names.

        ``phone=None`` removes the phone. A new password needs the current one
        (WrongPassword otherwise); revoking older tokens is the caller's job.
        """
        set_fields: dict[str, Any] = {}
        unset: tuple[str, ...] = ()
        changed: list[str] = []
        if new_password is not None:
            valid, _ = verify_password(current_password or "", self.password_hash)
            if not valid:
                raise WrongPassword
            set_fields["password_hash"] = hash_password(new_password)
            changed.append("password")
        if first_name is not UNSET and first_name != self.first_name:
            set_fields["first_name"] = first_name
            changed.append("firstName")
        if last_name is not UNSET and last_name != self.last_name:
            set_fields["last_name"] = last_name
            changed.append("lastName")
        if phone is not UNSET and phone != self.phone(keyring):
            if phone is None:
                unset = ("phone_enc",)
            else:
                set_fields["phone_enc"] = encrypt_str(phone, keyring)
            changed.append("phone")
        if changed:
            # Names of what changed only: never the values (password, phone).
            self._apply(EventType.USER_UPDATED, {"fields": changed}, set_fields, unset)
        return changed

    def set_password(self, new_password: str) -> None:
        """A new password without the old one (a used reset link proved the mailbox)."""
        self._apply(
            EventType.USER_UPDATED,
            {"fields": ["password"]},
            {"password_hash": hash_password(new_password)},
        )

    def mark_email_verified(self) -> None:
        if self.email_verified_at is None:
            self._apply(
                EventType.USER_UPDATED, {"fields": ["emailVerified"]}, {"email_verified_at": _now()}
            )

    def deactivate(self) -> None:
        """Soft delete: the account stays (email stays taken), login is refused from now on."""
        self._apply(EventType.USER_DELETED, {"reason": "deactivated"}, {"active": False})

    def ensure_stripe_customer(self, create: Callable[..., str]) -> str:
        """The user's payment-provider customer id, made by ``create`` on first need.

        ``create`` is the gateway's ``ensure_customer`` (models do not import gateways).
        """
        if self.stripe_customer_id:
            return self.stripe_customer_id
        customer_id = create(
            email=self.email,
            name=f"{self.first_name} {self.last_name}".strip(),
            user_id=str(self.id),
            existing_id=None,
        )
        return self.attach_stripe_customer(customer_id)

    def attach_stripe_customer(self, customer_id: str) -> str:
        """Record the Stripe customer id once; returns the id in force (first writer wins)."""
        User.objects(id=self.id, stripe_customer_id=None).update_one(
            set__stripe_customer_id=customer_id
        )
        self.reload("stripe_customer_id")
        return self.stripe_customer_id

    @classmethod
    def ensure_admin(
        cls,
        email: str,
        password: str,
        keyring: KeyRing | None = None,
        *,
        promote_existing: bool = False,
        revoke_tokens: Callable[[str, int], object] | None = None,
    ) -> tuple[User, bool]:
        """Create or repair the admin account (idempotent); returns (user, changed).

        An existing account that is not admin is promoted only with ``promote_existing``
        (else ExistingAccountNotAdmin). Any change to an existing account (role, password,
        reactivation) revokes every token it holds: ``revoke_tokens(user_id, cut_off_ms)``,
        by default the revocation store of the app's settings (Mongo + Redis).
        """
        user = cls.by_email(email)
        if user is None:
            try:
                created = cls.register(
                    email=email,
                    password=password,
                    first_name="Admin",
                    last_name="User",
                    role=UserRole.ADMIN,
                    keyring=keyring,
                )
                return created, True
            except EmailTaken:
                user = cls.by_email(email)
                if user is None:
                    raise
        if user.role != UserRole.ADMIN and not promote_existing:
            raise ExistingAccountNotAdmin(user.email)
        changes: dict[str, Any] = {}
        changed: list[str] = []
        if user.role != UserRole.ADMIN:
            changes["role"] = UserRole.ADMIN.value
            changed.append("role")
        if not user.active:
            changes["active"] = True
            changed.append("active")
        valid, _ = verify_password(password, user.password_hash)
        if not valid:
            changes["password_hash"] = hash_password(password)
            changed.append("password")
        if not changes:
            return user, False
        user._apply(EventType.USER_UPDATED, {"fields": changed}, changes)
        # Sessions opened under the old role or password end now (+1 ms: this millisecond too).
        (revoke_tokens or _revoke_all_tokens)(str(user.id), now_ms() + 1)
        return user, True

    # -- views -----------------------------------------------------------------------------

    def phone(self, keyring: KeyRing | None = None) -> str | None:
        return decrypt_str(self.phone_enc, keyring) if self.phone_enc else None

    def to_public(self, viewer: User | None, keyring: KeyRing | None = None) -> dict[str, Any]:
        """camelCase view; the phone only for the user themself or an admin, never the hash."""
        sees_private = viewer is not None and (viewer.is_admin or viewer.id == self.id)
        created = self.created_at
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return {
            "id": str(self.id),
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "phone": self.phone(keyring) if sees_private else None,
            "role": self.role,
            "active": self.active,
            "emailVerified": self.email_verified_at is not None,
            "stripeCustomerId": self.stripe_customer_id,
            "createdAt": created.isoformat(timespec="milliseconds") if created else None,
        }
