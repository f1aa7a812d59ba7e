"""Stripe gateway: the only module of the app that imports ``stripe``.

Callers get frozen dataclasses (``IntentInfo``, ``PaymentMethodInfo``, ``RefundInfo``,
``ChargeInfo``) and our error classes, never stripe objects or stripe exceptions:

* ``stripe.CardError`` → ``PermanentError(user-facing decline message, code=decline_code|code)``
* connection problems, rate limits, 5xx → ``TransientError`` (worth retrying)
* bad API key / missing permission → ``GatewayConfigError`` (an operator must act)
* 404 → ``NotFoundInStripe`` (a ``PermanentError`` with code ``resource_missing``)
* any other invalid request → ``PermanentError(code=stripe's code or "invalid_request")``

The same code runs against Stripe and against the localstripe emulator used in dev and tests
(``settings.stripe_api_base``). Where the emulator differs, the method docstrings say what we
do about it. Status strings are Stripe's, passed through unchanged: an intent is
``"canceled"`` (one l) here, while the order model spells its own status ``"cancelled"``.
Amounts are integers in minor units.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlparse

import stripe
import structlog

from core.settings import Settings, get_settings
from workflows.errors import GatewayConfigError, PermanentError, TransientError, WorkflowError

log = structlog.get_logger(__name__)

STRIPE_API_HOST = "api.stripe.com"
STRIPE_JS_URL = "https://js.stripe.com/v3/"
# Page size for every list call (Stripe's maximum).
PAGE_SIZE = 100
# Intent statuses from which ``cancel`` is refused but which are final anyway.
_CANCEL_NOOP_STATUSES = frozenset({"canceled", "succeeded"})
# Expanding the charge gives ``amount_refunded`` in the same round trip (Stripe returns only
# its id otherwise; localstripe always inlines it and ignores the expansion of a non-id).
_INTENT_EXPAND = ["latest_charge"]

P = ParamSpec("P")
R = TypeVar("R")


class NotFoundInStripe(PermanentError):
    """The customer, payment method, intent or refund does not exist (HTTP 404)."""

    code = "resource_missing"


class PaymentMethodNotOwned(PermanentError):
    """The payment method belongs to another Stripe customer: callers treat it as absent."""

    code = "payment_method_owned_elsewhere"


def idempotency_key(*parts: str) -> str:
    """The deterministic ``Idempotency-Key`` of one gateway POST: the same logical request
    (same operation, same objects) always sends the same key, so a retry after a lost
    answer is answered by Stripe with the first result instead of acting twice."""
    return "oms:" + ":".join(parts)


class WebhookSignatureError(ValueError):
    """A webhook body that must be rejected: missing, bad or stale signature, or not JSON."""


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class IntentInfo:
    """A PaymentIntent as the app needs it.

    ``status`` is Stripe's spelling (``requires_payment_method``, ``requires_confirmation``,
    ``requires_action``, ``processing``, ``requires_capture``, ``succeeded``, ``canceled``).
    ``decline_code`` is Stripe's ``decline_code`` when it sends one (e.g. ``insufficient_funds``),
    else the error code (localstripe never sends ``decline_code``). ``refunded_cents`` comes
    from the latest charge: Stripe keeps the intent ``succeeded`` after refunds.
    """

    id: str
    status: str
    amount: int
    currency: str
    # Kept out of repr so it never lands in a log line by accident.
    client_secret: str | None = field(repr=False)
    order_id: str | None
    customer: str | None
    payment_method: str | None
    last_error_code: str | None
    decline_code: str | None
    last_error_message: str | None
    next_action_type: str | None
    refunded_cents: int = 0
    created: int | None = None
    # What was actually taken (Stripe's ``amount_received``); 0 until the charge succeeds.
    amount_received: int = 0
    # The id of the latest charge (refund and dispute events name charges, not intents).
    charge_id: str | None = None
    capture_method: str | None = None
    # Why it was canceled (``requested_by_customer``, ``abandoned``, ``automatic`` …), if it was.
    cancellation_reason: str | None = None
    # What an authorization (``requires_capture``) holds; 0 otherwise.
    amount_capturable: int = 0


@dataclass(frozen=True, slots=True)
class PaymentMethodInfo:
    """A saved card (``pm_…`` payment method or legacy ``card_…`` source); brand lower-case."""

    id: str
    customer: str | None
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True, slots=True)
class RefundInfo:
    id: str
    amount: int
    status: str | None
    payment_intent: str | None
    created: int | None = None
    # Our refunds carry ``metadata.idempotency_key``; one made elsewhere (Dashboard) has None.
    idempotency_key: str | None = None
    charge: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeInfo:
    id: str
    amount: int
    amount_refunded: int
    currency: str
    status: str | None
    paid: bool
    payment_intent: str | None
    payment_method: str | None
    customer: str | None
    created: int | None
    failure_code: str | None
    failure_message: str | None


# --------------------------------------------------------------------------- errors
def _map_error(exc: stripe.StripeError, operation: str) -> WorkflowError:
    """The one place where stripe exceptions become ours."""
    status = exc.http_status
    detail = exc.user_message or type(exc).__name__
    if isinstance(exc, stripe.CardError):
        error = exc.error.to_dict() if exc.error is not None else {}
        code = error.get("decline_code") or exc.code or "card_declined"
        return PermanentError(exc.user_message or "Your card was declined.", code=code)
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return TransientError(f"stripe unavailable during {operation}: {type(exc).__name__}")
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return GatewayConfigError(f"stripe refused our credentials during {operation}: {detail}")
    if isinstance(exc, stripe.InvalidRequestError):
        if status == 404:
            return NotFoundInStripe(f"{operation}: {detail}", code="resource_missing")
        return PermanentError(f"{operation}: {detail}", code=exc.code or "invalid_request")
    if isinstance(exc, stripe.IdempotencyError):
        # Same key, different parameters: a bug on our side, retrying cannot help.
        return PermanentError(f"{operation}: {detail}", code="idempotency_error")
    if isinstance(exc, stripe.APIError):
        # A non-JSON 4xx (e.g. a route the emulator lacks) will not fix itself; 5xx may.
        if status is not None and 400 <= status < 500:
            return PermanentError(f"{operation}: unexpected {status} answer", code="api_error")
        return TransientError(f"stripe error during {operation}: HTTP {status}")
    return PermanentError(f"{operation}: {detail}", code="stripe_error")


def _translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a gateway method, turning any stripe exception into one of ours."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _map_error(exc, fn.__name__) from exc

    return wrapper


# --------------------------------------------------------------------------- converters
def _as_dict(obj: Any) -> dict[str, Any]:
    """A stripe object as plain data (stripe 16 objects are not dicts)."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj) if isinstance(obj, Mapping) else {}


def _id_of(value: Any) -> str | None:
    """An id field that may come expanded (a dict) or not (a string)."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value if isinstance(value, str) else None


def _intent_info(data: dict[str, Any]) -> IntentInfo:
    error = data.get("last_payment_error") or {}
    next_action = data.get("next_action") or {}
    charge = data.get("latest_charge")
    # Only an expanded charge carries the refunded amount; an id alone means unknown → 0.
    refunded = (charge.get("amount_refunded") or 0) if isinstance(charge, Mapping) else 0
    metadata = data.get("metadata") or {}
    received = data.get("amount_received")
    if received is None:
        # localstripe has no amount_received: the captured amount of its succeeded charge.
        captured = (
            isinstance(charge, Mapping)
            and data.get("status") == "succeeded"
            and charge.get("status") == "succeeded"
            and charge.get("captured", True)
        )
        received = (charge.get("amount_captured") or charge.get("amount") or 0) if captured else 0
    return IntentInfo(
        id=data["id"],
        status=data.get("status") or "",
        amount=int(data.get("amount") or 0),
        currency=data.get("currency") or "",
        client_secret=data.get("client_secret"),
        order_id=metadata.get("order_id"),
        customer=_id_of(data.get("customer")),
        payment_method=_id_of(data.get("payment_method")),
        last_error_code=error.get("code"),
        decline_code=error.get("decline_code") or error.get("code"),
        last_error_message=error.get("message"),
        next_action_type=next_action.get("type"),
        refunded_cents=int(refunded),
        created=data.get("created"),
        amount_received=int(received or 0),
        charge_id=_id_of(charge),
        capture_method=data.get("capture_method"),
        cancellation_reason=data.get("cancellation_reason"),
        amount_capturable=int(
            data.get("amount_capturable")
            if data.get("amount_capturable") is not None
            else (data.get("amount") or 0)
            if data.get("status") == "requires_capture"
            else 0
        ),
    )


def _payment_method_info(data: dict[str, Any]) -> PaymentMethodInfo:
    # Two shapes: a payment method keeps the card under "card"; a legacy card (a token
    # attached as a source, or localstripe answering GET /v1/payment_methods/card_…) is flat.
    card = data.get("card") if data.get("object") != "card" else data
    card = card if isinstance(card, Mapping) else {}
    brand = card.get("brand")
    return PaymentMethodInfo(
        id=data["id"],
        customer=_id_of(data.get("customer")),
        brand=brand.lower() if isinstance(brand, str) else None,
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
    )


def _refund_info(data: dict[str, Any]) -> RefundInfo:
    return RefundInfo(
        id=data["id"],
        amount=int(data.get("amount") or 0),
        status=data.get("status"),
        payment_intent=_id_of(data.get("payment_intent")),
        created=data.get("created"),
        idempotency_key=(data.get("metadata") or {}).get("idempotency_key"),
        charge=_id_of(data.get("charge")),
    )


def _charge_info(data: dict[str, Any]) -> ChargeInfo:
    return ChargeInfo(
        id=data["id"],
        amount=int(data.get("amount") or 0),
        amount_refunded=int(data.get("amount_refunded") or 0),
        currency=data.get("currency") or "",
        status=data.get("status"),
        paid=bool(data.get("paid")),
        payment_intent=_id_of(data.get("payment_intent")),
        payment_method=_id_of(data.get("payment_method")),
        customer=_id_of(data.get("customer")),
        created=data.get("created"),
        failure_code=data.get("failure_code"),
        failure_message=data.get("failure_message"),
    )


def _is_real_stripe(api_base: str) -> bool:
    return (urlparse(api_base).hostname or "") == STRIPE_API_HOST


# Stripe's documented CSP for Stripe.js, Elements and 3-D Secure
# (https://docs.stripe.com/security/guide#content-security-policy).
STRIPE_JS_SOURCES = ("https://js.stripe.com", "https://*.js.stripe.com")
STRIPE_CSP = {
    "script-src": STRIPE_JS_SOURCES,
    "frame-src": (*STRIPE_JS_SOURCES, "https://hooks.stripe.com"),
    "connect-src": ("https://api.stripe.com",),
}


def csp_sources(api_base: str) -> dict[str, tuple[str, ...]]:
    """What the pages' Content-Security-Policy must allow for Stripe, per directive.

    With Stripe's API base: Stripe's documented hosts (Stripe.js is served from
    js.stripe.com, not from the API host). With an emulator: its own origin, which serves
    the fake Stripe.js and answers its calls.
    """
    if _is_real_stripe(api_base):
        return dict(STRIPE_CSP)
    parts = urlparse(api_base)
    origin = (f"{parts.scheme}://{parts.netloc}",)
    return {"script-src": origin, "frame-src": origin, "connect-src": origin}


# --------------------------------------------------------------------------- gateway
class StripeGateway:
    """Customers, payment methods, intents, refunds and webhook verification.

    One ``stripe.StripeClient`` per gateway (never the global ``stripe.api_key``), so tests can
    point several gateways at different emulators and nothing leaks between them.
    Network retries are off: Celery's retry policy owns retries, and the API must answer fast.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._api_base = self.settings.stripe_api_base.rstrip("/")
        self._client = self._make_client(self.settings.stripe_timeout_seconds)
        # Health checks use their own (shorter) timeout: one client per timeout value.
        self._ping_clients: dict[float, stripe.StripeClient] = {}
        self._ping_lock = threading.Lock()
        # None: not probed yet; see _server_filters_intents.
        self._intent_list_filters: bool | None = None

    def _make_client(self, timeout: float) -> stripe.StripeClient:
        base = self._api_base
        addresses: dict[str, str] = {"api": base}
        if not _is_real_stripe(base):
            # An emulator serves everything: no request may ever leave for real Stripe.
            addresses.update(connect=base, files=base, meter_events=base)
        return stripe.StripeClient(
            self.settings.stripe_api_key,
            base_addresses=addresses,  # type: ignore[arg-type]
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=0,
        )

    # ---------------------------------------------------------------- customers
    @_translate_errors
    def ensure_customer(
        self, *, email: str, name: str | None, user_id: str, existing_id: str | None
    ) -> str:
        """Return ``existing_id`` if that customer still exists, else create one.

        Stripe keeps deleted customers retrievable with ``deleted: true`` (localstripe answers
        404): both count as gone. The new customer carries ``metadata.user_id``. The
        idempotency key names the user *and* the customer being replaced (``first`` when
        none), so two racing first creates make one customer, while a replacement after a
        deletion gets a new key (the old one would hand back the deleted customer).
        """
        if existing_id:
            try:
                current = _as_dict(self._client.v1.customers.retrieve(existing_id))
                if not current.get("deleted"):
                    return existing_id
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
        params: dict[str, Any] = {"email": email, "metadata": {"user_id": user_id}}
        if name:
            params["name"] = name
        created = self._client.v1.customers.create(
            params,  # type: ignore[arg-type]
            {"idempotency_key": idempotency_key("customer", user_id, existing_id or "first")},
        )
        return created.id

    # ---------------------------------------------------------------- payment methods
    @_translate_errors
    def attach_token(self, customer_id: str, token: str) -> PaymentMethodInfo:
        """Browser path: save a Stripe.js ``createToken`` token (``tok_…``) on the customer.

        The token becomes a card source (``POST /v1/customers/{id}/sources``) whose ``card_…``
        id is then usable as an intent's ``payment_method``, on Stripe and on localstripe.
        Checked in localstripe 1.15.10: tokens are created with raw card numbers (a ``pk_``
        key is accepted there), ``add_source`` accepts ``tok_``/``src_`` ids and declines
        4000000000000002 with a 402 ``card_declined`` (→ ``PermanentError``); intents accept
        ``card_…`` as ``payment_method``, and confirming charges the card, including 3-D Secure
        (4000002500003155) and confirm-time declines (4000000000000341). The emulator's
        ``PaymentMethod.list`` does not return such cards, so ``list_payment_methods`` also
        reads the customer's card sources; ``payment_methods.detach`` refuses ``card_…`` ids,
        so ``detach_payment_method`` deletes the source instead.
        """
        card = self._client.v1.customers.payment_sources.create(
            customer_id,
            {"source": token},
            {"idempotency_key": idempotency_key("source", customer_id, token)},
        )
        return _payment_method_info(_as_dict(card))

    @_translate_errors
    def attach_payment_method(self, customer_id: str, pm_id: str) -> PaymentMethodInfo:
        """Make ``pm_id`` the customer's (attaching it once) and return it.

        This is the path of every Stripe.js-made method (``stripe.createPaymentMethod``, the
        Payment Element): it belongs to no customer until we attach it. The owner is read
        *before* attaching: a method already owned by *another* customer raises
        ``PaymentMethodNotOwned`` (Stripe refuses that attach; localstripe would silently move
        the card to the caller, so the check must be ours). Already this customer's: no
        call. A card that declines at attach (4000000000000002) raises ``PermanentError``
        (code ``card_declined``). The attach carries the idempotency key
        ``attach:{customer}:{pm}``.
        """
        current = _payment_method_info(_as_dict(self._client.v1.payment_methods.retrieve(pm_id)))
        if current.customer == customer_id:
            return current
        if current.customer is not None:
            raise PaymentMethodNotOwned(
                "this payment method belongs to another customer",
                code="payment_method_owned_elsewhere",
            )
        pm = self._client.v1.payment_methods.attach(
            pm_id,
            {"customer": customer_id},
            {"idempotency_key": idempotency_key("attach", customer_id, pm_id)},
        )
        return _payment_method_info(_as_dict(pm))

    @_translate_errors
    def get_payment_method(self, pm_id: str) -> PaymentMethodInfo:
        """Retrieve a payment method (``pm_…`` or ``card_…``); its owner is ``.customer``."""
        return _payment_method_info(_as_dict(self._client.v1.payment_methods.retrieve(pm_id)))

    @_translate_errors
    def list_payment_methods(self, customer_id: str) -> list[PaymentMethodInfo]:
        """The customer's cards: payment methods plus legacy card sources, deduplicated.

        Uses ``PaymentMethod.list(customer=, type="card")`` (``Customer.list_payment_methods``
        is 404 on localstripe). Stripe's list already includes ``card_…`` sources; localstripe's
        does not, hence the second call. localstripe rejects ``limit`` on the sources list, so
        only its first page (10 cards) is read.
        """
        found: dict[str, PaymentMethodInfo] = {}
        methods = self._client.v1.payment_methods.list(
            {"customer": customer_id, "type": "card", "limit": PAGE_SIZE}
        )
        for pm in methods.auto_paging_iter():
            info = _payment_method_info(_as_dict(pm))
            found[info.id] = info
        sources = self._client.v1.customers.payment_sources.list(customer_id, {"object": "card"})
        for source in sources.data:
            data = _as_dict(source)
            if data.get("object") == "card" and data["id"] not in found:
                found[data["id"]] = _payment_method_info(data)
        return list(found.values())

    @_translate_errors
    def detach_payment_method(self, pm_id: str) -> None:
        """Detach a saved card from its customer; detaching a detached card is a no-op.

        ``card_…`` sources are deleted from their customer (localstripe's detach only takes
        ``pm_…`` ids; on Stripe both ways work).
        """
        current = _payment_method_info(_as_dict(self._client.v1.payment_methods.retrieve(pm_id)))
        if current.customer is None:
            return
        if pm_id.startswith("card_"):
            self._client.v1.customers.payment_sources.delete(current.customer, pm_id)
        else:
            self._client.v1.payment_methods.detach(
                pm_id, options={"idempotency_key": idempotency_key("detach", pm_id)}
            )

    # ---------------------------------------------------------------- intents
    @_translate_errors
    def create_intent(
        self,
        *,
        order_id: str,
        amount_cents: int,
        currency: str,
        customer_id: str,
        payment_method_id: str | None = None,
        capture_method: str = "automatic",
    ) -> IntentInfo:
        """Create an unconfirmed card PaymentIntent for an order.

        ``capture_method="manual"`` authorizes only: confirm ends ``requires_capture`` and
        ``capture_intent`` takes the money (Stripe keeps the authorization 7 days).

        ``metadata.order_id`` ties it to the order (reconciliation finds it that way). The
        idempotency key ``order:{order_id}:create_intent`` makes Stripe return the same intent
        on a retry; localstripe ignores it, so callers must also store the intent id and reuse
        it. ``payment_method_types=["card"]`` and no description/automatic_payment_methods:
        localstripe rejects the latter two.
        """
        params: dict[str, Any] = {
            "amount": amount_cents,
            "currency": currency,
            "customer": customer_id,
            "metadata": {"order_id": order_id},
            "payment_method_types": ["card"],
            "expand": _INTENT_EXPAND,
        }
        if capture_method == "manual":
            params["capture_method"] = "manual"
        if payment_method_id:
            params["payment_method"] = payment_method_id
        intent = self._client.v1.payment_intents.create(
            params,  # type: ignore[arg-type]
            {"idempotency_key": idempotency_key("order", order_id, "create_intent")},
        )
        return _intent_info(_as_dict(intent))

    @_translate_errors
    def set_intent_payment_method(self, intent_id: str, pm_id: str) -> IntentInfo:
        """Set the intent's payment method (a modify), to be followed by ``confirm_intent``."""
        intent = self._client.v1.payment_intents.update(
            intent_id,
            {"payment_method": pm_id, "expand": _INTENT_EXPAND},
            {"idempotency_key": idempotency_key("intent", intent_id, "payment_method", pm_id)},
        )
        return _intent_info(_as_dict(intent))

    @_translate_errors
    def confirm_intent(self, intent_id: str, *, attempt: str = "1") -> IntentInfo:
        """Confirm the intent with the payment method already set on it; return its state.

        Never passes ``payment_method`` (localstripe answers 500). A decline does not raise:
        Stripe answers 402 but has moved the intent to ``requires_payment_method`` with
        ``last_payment_error``, which the returned ``IntentInfo`` carries. 3-D Secure gives
        ``requires_action``. A confirm refused because the intent is past that point (a retry
        after a lost response: already ``succeeded``, ``processing``, declined…) returns the
        current state too. An intent still ``requires_confirmation``, or one that never had a
        payment method, raises ``PermanentError``.

        ``attempt`` names this confirmation (the caller passes what changes between genuine
        attempts, e.g. the payment method and the order's version): a retry of the same
        attempt sends the same idempotency key, a new card a new one.
        """
        try:
            intent = self._client.v1.payment_intents.confirm(
                intent_id,
                {"expand": _INTENT_EXPAND},
                {"idempotency_key": idempotency_key("intent", intent_id, "confirm", attempt)},
            )
        except stripe.CardError:
            return self.retrieve_intent(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 400:
                raise
            current = self.retrieve_intent(intent_id)
            never_tried = (
                current.status == "requires_payment_method" and not current.last_error_code
            )
            if current.status == "requires_confirmation" or never_tried:
                raise  # a real refusal (e.g. no payment method set): the caller's bug
            return current
        return _intent_info(_as_dict(intent))

    @_translate_errors
    def capture_intent(self, intent_id: str) -> IntentInfo:
        """Capture an authorized (``requires_capture``) intent in full; return its state.

        A capture answered 400 because it already happened (a retry after a lost answer)
        returns the ``succeeded`` intent; an authorization that is gone (canceled, expired)
        raises ``PermanentError`` (code ``authorization_lost``).
        """
        try:
            intent = self._client.v1.payment_intents.capture(
                intent_id,
                {"expand": _INTENT_EXPAND},
                {"idempotency_key": idempotency_key("intent", intent_id, "capture")},
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 400:
                raise
            current = self.retrieve_intent(intent_id)
            if current.status == "succeeded":
                return current
            raise PermanentError(
                f"payment {intent_id} cannot be captured ({current.status})",
                code="authorization_lost",
            ) from exc
        captured = _intent_info(_as_dict(intent))
        if captured.status != "succeeded":
            # localstripe "captures" a canceled intent's charge and answers 200 with the
            # intent still canceled; Stripe refuses. Either way nothing may count as paid.
            raise PermanentError(
                f"payment {intent_id} cannot be captured ({captured.status})",
                code="authorization_lost",
            )
        return captured

    @_translate_errors
    def cancel_intent(self, intent_id: str) -> IntentInfo:
        """Cancel the intent; an already ``canceled`` or ``succeeded`` one is returned as is.

        Both Stripe and localstripe answer 400 to cancelling those; for ``succeeded`` the
        caller must refund instead (the returned status says so).
        """
        try:
            intent = self._client.v1.payment_intents.cancel(
                intent_id,
                {"expand": _INTENT_EXPAND},
                {"idempotency_key": idempotency_key("intent", intent_id, "cancel")},
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 400:
                raise
            current = self.retrieve_intent(intent_id)
            if current.status not in _CANCEL_NOOP_STATUSES:
                raise
            return current
        return _intent_info(_as_dict(intent))

    @_translate_errors
    def retrieve_intent(self, intent_id: str) -> IntentInfo:
        """The intent's current state (with ``refunded_cents`` from its latest charge)."""
        intent = self._client.v1.payment_intents.retrieve(intent_id, {"expand": _INTENT_EXPAND})
        return _intent_info(_as_dict(intent))

    def _server_filters_intents(self) -> bool:
        """Whether the server filters PaymentIntent lists itself; probed once per gateway.

        Stripe filters by ``customer``/``created`` and lists newest first. localstripe's list
        accepts only ``limit``/``starting_after`` (anything else → 400 "Unexpected …") and
        lists oldest first, so against it we list everything and filter here.
        """
        if self._intent_list_filters is None:
            try:
                self._client.v1.payment_intents.list({"limit": 1, "created": {"gt": 0}})
                self._intent_list_filters = True
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 400 or not (exc.user_message or "").startswith("Unexpected"):
                    raise
                log.info("stripe_intent_list_filters_unsupported", api_base=self._api_base)
                self._intent_list_filters = False
        return self._intent_list_filters

    def _iter_intents(
        self, *, customer_id: str | None, created_after: int | None
    ) -> Iterator[dict[str, Any]]:
        """Intents matching the filters, server-side when supported, always re-checked here."""
        params: dict[str, Any] = {"limit": PAGE_SIZE, "expand": ["data.latest_charge"]}
        if self._server_filters_intents():
            if customer_id:
                params["customer"] = customer_id
            if created_after is not None:
                params["created"] = {"gt": created_after}
        pages = self._client.v1.payment_intents.list(params)  # type: ignore[arg-type]
        for intent in pages.auto_paging_iter():
            data = _as_dict(intent)
            if customer_id and _id_of(data.get("customer")) != customer_id:
                continue
            if created_after is not None and (data.get("created") or 0) <= created_after:
                continue
            yield data

    @_translate_errors
    def list_intents_for_order(
        self, order_id: str, *, customer_id: str | None = None
    ) -> list[IntentInfo]:
        """Every intent whose ``metadata.order_id`` is ``order_id``, newest first.

        Metadata is matched client-side (no list filter for it; Stripe's search API is
        eventually consistent and absent from localstripe). Pass ``customer_id`` to keep the
        scan to that customer's intents on Stripe.
        """
        found = [
            _intent_info(data)
            for data in self._iter_intents(customer_id=customer_id, created_after=None)
            if (data.get("metadata") or {}).get("order_id") == order_id
        ]
        found.sort(key=lambda i: i.created or 0, reverse=True)
        return found

    @_translate_errors
    def list_intents(
        self, *, created_after: int | None = None, limit: int = 100
    ) -> list[IntentInfo]:
        """Recent intents (``created`` > ``created_after``), newest first, at most ``limit``.

        For orphan reconciliation: callers read ``order_id`` (from metadata; None for intents
        that are not ours). Stripe lists newest first with the filter applied, so we stop after
        ``limit``; localstripe lists oldest first without filters, so we scan and sort.
        """
        newest_first = self._server_filters_intents()
        found: list[IntentInfo] = []
        for data in self._iter_intents(customer_id=None, created_after=created_after):
            found.append(_intent_info(data))
            if newest_first and len(found) >= limit:
                break
        found.sort(key=lambda i: i.created or 0, reverse=True)
        return found[:limit]

    # ---------------------------------------------------------------- refunds and charges
    @_translate_errors
    def refund(
        self, *, intent_id: str, amount_cents: int | None, idempotency_key: str
    ) -> RefundInfo:
        """Refund ``amount_cents`` of a succeeded intent; None refunds everything left.

        Idempotent on both backends: the key goes to Stripe as the idempotency key *and* into
        the refund's ``metadata.idempotency_key``; a refund already carrying it is returned
        as is (localstripe ignores idempotency keys). Then, because localstripe neither stops
        over-refunds nor treats a missing amount as "what is left" (it refunds the whole
        charge again), the amount is checked and computed here:

        * intent not ``succeeded`` (nothing charged) → ``PermanentError("intent_not_succeeded")``
        * nothing left → ``PermanentError("charge_already_refunded")``
        * ``amount_cents`` <= 0 or more than what is left → ``PermanentError("amount_too_large")``
          (or ``invalid_amount``)

        No ``reason`` is sent (localstripe answers 400). The intent stays ``succeeded``;
        ``retrieve_intent().refunded_cents`` and ``list_refunds`` tell what was refunded.
        """
        intent = _as_dict(
            self._client.v1.payment_intents.retrieve(intent_id, {"expand": _INTENT_EXPAND})
        )
        charge = intent.get("latest_charge")
        if intent.get("status") != "succeeded" or not isinstance(charge, Mapping):
            raise PermanentError(
                f"payment {intent_id} was not charged, nothing to refund",
                code="intent_not_succeeded",
            )
        for existing in self._refund_dicts(intent_id):
            if (existing.get("metadata") or {}).get("idempotency_key") == idempotency_key:
                return _refund_info(existing)
        remaining = int(charge.get("amount") or 0) - int(charge.get("amount_refunded") or 0)
        if remaining <= 0:
            raise PermanentError(
                f"payment {intent_id} is already fully refunded", code="charge_already_refunded"
            )
        amount = remaining if amount_cents is None else amount_cents
        if amount <= 0:
            raise PermanentError("refund amount must be positive", code="invalid_amount")
        if amount > remaining:
            raise PermanentError(
                f"refund of {amount} exceeds the {remaining} left to refund",
                code="amount_too_large",
            )
        refund = self._client.v1.refunds.create(
            {
                "payment_intent": intent_id,
                "amount": amount,
                "metadata": {"idempotency_key": idempotency_key},
            },
            {"idempotency_key": idempotency_key},
        )
        return _refund_info(_as_dict(refund))

    def _refund_dicts(self, intent_id: str) -> list[dict[str, Any]]:
        """Raw refunds of a charged intent (the caller checked that it has a charge)."""
        refunds = self._client.v1.refunds.list({"payment_intent": intent_id, "limit": PAGE_SIZE})
        return [_as_dict(r) for r in refunds.auto_paging_iter()]

    @_translate_errors
    def list_refunds(self, intent_id: str) -> list[RefundInfo]:
        """The intent's refunds, newest first ([] when it was never charged).

        The intent is read first because localstripe answers 500 when listing the refunds of
        an intent without a charge.
        """
        intent = _as_dict(self._client.v1.payment_intents.retrieve(intent_id))
        if not intent.get("latest_charge"):
            return []
        found = [_refund_info(r) for r in self._refund_dicts(intent_id)]
        found.sort(key=lambda r: r.created or 0, reverse=True)
        return found

    @_translate_errors
    def retrieve_charge(self, charge_id: str) -> ChargeInfo:
        """One charge as Stripe has it now (``amount_refunded``, ``payment_intent``): refund and
        dispute events name the charge, and their payload is re-read rather than trusted."""
        return _charge_info(_as_dict(self._client.v1.charges.retrieve(charge_id)))

    @_translate_errors
    def list_charges(self, customer_id: str) -> list[ChargeInfo]:
        """The customer's charges (payment history), newest first."""
        charges = self._client.v1.charges.list({"customer": customer_id, "limit": PAGE_SIZE})
        found = [_charge_info(_as_dict(c)) for c in charges.auto_paging_iter()]
        found.sort(key=lambda c: c.created or 0, reverse=True)
        return found

    # ---------------------------------------------------------------- webhooks and config
    def verify_webhook(self, payload: bytes, sig_header: str | None) -> dict[str, Any]:
        """Check ``Stripe-Signature`` over the raw body and return the event as a plain dict.

        Raises ``WebhookSignatureError`` for a missing header, a bad signature, a timestamp
        older than ``stripe_webhook_tolerance`` seconds, or a body that is not a JSON event.
        """
        if not sig_header:
            raise WebhookSignatureError("missing Stripe-Signature header")
        try:
            stripe.Webhook.construct_event(
                payload,
                sig_header,
                self.settings.stripe_webhook_secret,
                tolerance=self.settings.stripe_webhook_tolerance,
            )
        except stripe.SignatureVerificationError as exc:
            raise WebhookSignatureError(f"invalid signature: {exc.user_message}") from exc
        except (ValueError, TypeError, AttributeError) as exc:
            # ValueError: not UTF-8 or not JSON. AttributeError/TypeError: JSON that is not an
            # object (the SDK calls .get on it).
            raise WebhookSignatureError("malformed webhook body") from exc
        # The body itself, not the SDK's object tree: callers get exactly what Stripe sent.
        data = json.loads(payload)
        if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
            raise WebhookSignatureError("webhook body is not a Stripe event")
        return data

    def publishable_config(self) -> dict[str, str]:
        """What the browser needs: the publishable key and where to load Stripe.js from.

        Against an emulator the fake Stripe.js it serves (``{api_base}/js.stripe.com/v3/``).
        """
        if _is_real_stripe(self._api_base):
            js_url = STRIPE_JS_URL
        else:
            js_url = f"{self._api_base}/js.stripe.com/v3/"
        return {"publishableKey": self.settings.stripe_publishable_key, "stripeJsUrl": js_url}

    @_translate_errors
    def ping(self, timeout_s: float | None = None) -> None:
        """Cheapest authenticated call (list one customer), for the health check.

        ``timeout_s`` bounds the HTTP call (default: ``stripe_timeout_seconds``).
        """
        client = self._client
        if timeout_s is not None:
            key = round(timeout_s, 3)
            with self._ping_lock:
                client = self._ping_clients.get(key) or self._make_client(key)
                self._ping_clients[key] = client
        client.v1.customers.list({"limit": 1})


@functools.lru_cache(maxsize=1)
def get_gateway() -> StripeGateway:
    """The process-wide gateway built from settings (``get_gateway.cache_clear()`` resets)."""
    return StripeGateway()
