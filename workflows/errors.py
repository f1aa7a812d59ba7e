"""Error classes of the order lifecycle. Pure: no I/O, no third-party imports."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base of every lifecycle error."""

    code = "WORKFLOW_ERROR"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__name__
        if code:
            self.code = code


class TransientError(WorkflowError):
    """Worth retrying: a dependency was unreachable, slow or rate limiting."""

    code = "TRANSIENT"


class PermanentError(WorkflowError):
    """Retrying cannot help: out of stock, card declined, payment timed out.

    ``code`` is machine-readable (``card_declined``, ``out_of_stock``); ``message`` is
    the reason shown to people (it names the sku or the decline reason).
    """

    code = "PERMANENT"


class GatewayConfigError(WorkflowError):
    """The gateway is misconfigured (bad API key, permissions): an operator must act."""

    code = "GATEWAY_CONFIG"


class InvalidTransition(WorkflowError):
    """A status move the transition table does not allow."""

    code = "INVALID_TRANSITION"
