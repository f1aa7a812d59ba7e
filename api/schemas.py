"""Base request/response schema: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

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


class PublicModel(BaseModel):
    """Response bodies: camelCase aliases when dumped with by_alias=True."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
