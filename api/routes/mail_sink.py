"""The development mail sink's messages, for the admin dashboard (off unless MAIL_SINK_DIR)."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import AdminUser, AppSettings
from api.envelope import ApiError, success
from api.responses import error_responses

router = APIRouter(prefix="/api/dev", tags=["operations"])


def _message(path: Path) -> dict[str, Any]:
    msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    text = msg.get_body(preferencelist=("plain",))
    return {
        "id": path.stem,
        "to": str(msg.get("To", "")),
        "from": str(msg.get("From", "")),
        "subject": str(msg.get("Subject", "")),
        "date": str(msg.get("Date", "")),
        "messageId": str(msg.get("Message-ID", "")),
        "text": text.get_content() if text is not None else "",
    }


@router.get(
    "/mail",
    summary="Emails the local SMTP sink caught, newest first (development only)",
    responses=error_responses(401, 403, 404),
)
def list_mail(
    _: AdminUser,
    settings: AppSettings,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    to: Annotated[str | None, Query(max_length=320)] = None,
) -> JSONResponse:
    if not settings.mail_sink_dir or settings.is_production:
        raise ApiError(404, "MAIL_SINK_OFF", "no mail sink here (set MAIL_SINK_DIR in development)")
    folder = Path(settings.mail_sink_dir)
    files = sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []
    messages = []
    for path in files:
        item = _message(path)
        if to and to.lower() not in item["to"].lower():
            continue
        messages.append(item)
        if len(messages) >= limit:
            break
    return success({"messages": messages})
