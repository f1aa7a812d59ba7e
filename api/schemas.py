"""Base request/response schema: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Request bodies: strict about unknown fields so nothing is silently dropped."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )

    def fingerprint(self) -> str:
        """Stable hash of the request body, to tell a replay from a different request
        (what an ``Idempotency-Key`` is checked against)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class PublicModel(BaseModel):
    """Response bodies: camelCase aliases when dumped with by_alias=True."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
