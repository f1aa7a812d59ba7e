"""Schemathesis against the ASGI app, authenticated as a customer: no 5xx, bodies match.

Bounded here (part of `make test`; ``--fuzz-examples=N`` runs longer). `make fuzz` is the
full run: the Schemathesis CLI with every check and the stateful phase, anonymous and as a
customer, against a private stack (bench/fuzz.py).
Every documented operation is fuzzed, so routes added later are covered automatically.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

# Examples per operation in the bounded run, three quarters valid data, a quarter invalid.
FUZZ_EXAMPLES = 20
# Operations endpoints answer 503 by design while a dependency (here: workers) is down.
EXCLUDED_PATHS = r"^/(health|ready|metrics)$"
CHECKS = [not_a_server_error, response_schema_conformance]


def _examples(request: pytest.FixtureRequest) -> int:
    value = request.config.getoption("--fuzz-examples", default=None)
    return int(value) if value else FUZZ_EXAMPLES


def _new_customer() -> Any:
    from models.user import User

    return User.register(
        email=f"fuzz-{uuid.uuid4().hex[:12]}@example.com",
        password="fuzz-password-1",
        first_name="Fuzz",
        last_name="Customer",
    )


def _token(user: Any) -> str:
    # Minted directly: no HTTP round trip, no argon2 run per example.
    from core.security import create_access_token

    token, _ = create_access_token(str(user.id), user.role)
    return token


class Tokens:
    """Bearer tokens per operation; session-ending operations get a fresh one each call."""

    def __init__(self) -> None:
        self.customer = _new_customer()
        self.shared = _token(self.customer)
        self.logout_user = _new_customer()

    def for_operation(self, label: str) -> str:
        if label == "POST /api/users/logout":
            return _token(self.logout_user)
        if label == "DELETE /api/users/profile":
            return _token(_new_customer())
        return self.shared


def _run_operation(operation: Any, examples: int, tokens: Tokens) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    positive = max(1, examples * 3 // 4)
    budget = {GenerationMode.POSITIVE: positive, GenerationMode.NEGATIVE: examples - positive}
    for mode, count in budget.items():
        if count < 1:
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=count,
            deadline=None,
            database=None,
            # The bounded run in `make test` is reproducible; longer runs explore anew.
            derandomize=examples <= FUZZ_EXAMPLES,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            headers = {"Authorization": f"Bearer {tokens.for_operation(label)}"}
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:
            # Some inputs have no invalid form Schemathesis can build (e.g. a free-form
            # path segment in negative mode): nothing to test there, not a failure.
            if mode is GenerationMode.POSITIVE:
                raise


def test_every_operation_answers_without_5xx_and_matches_its_schema(
    app: Any, request: pytest.FixtureRequest
) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app):  # runs the lifespan once: logging and Mongo connected
        pass
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=EXCLUDED_PATHS)
    examples = _examples(request)
    tokens = Tokens()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _run_operation(operation, examples, tokens)
        # Collect every operation's failure, not just the first. Schemathesis reports
        # check failures as a BaseExceptionGroup, which `except Exception` would miss.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 6, "the schema lost the users operations"
    assert not failures, "\n\n".join(failures)
