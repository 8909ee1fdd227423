"""Terminal-facing endpoints (docs/protocol.md): upload batches, sync."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from caisse.api.deps import SessionDep, SettingsDep
from caisse.api.schemas import BatchIn, BatchOut, SyncOut, error_responses
from caisse.cards.member_codes import MAX_FAILURES_BODY_BYTES
from caisse.db import writer_turn
from caisse.errors import CaisseError, InvalidInput
from caisse.ingest.upload import MAX_BATCH_BODY_BYTES, MAX_RECORDS_PER_BATCH, BatchResult, ingest_prepared, prepare_batch
from caisse.terminals.health import record_report
from caisse.terminals.sync import MAX_SINCE, SYNC_VERSIONS, record_code_failures, sync_terminal

router = APIRouter(prefix="/v1/terminals", tags=["terminals"])

# The body is read by read_batch (size limit first, no model on the hot path): declared here so
# the OpenAPI schema shows it.
_BATCH_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": BatchIn.model_json_schema()}}}}


class BatchTooLarge(CaisseError):
    status_code = 413


class InvalidJson(CaisseError):
    status_code = 400


def header_number(value: str | None) -> int | None:
    """A header of decimal digits as an int, else None. ASCII only: headers are decoded as
    latin-1, whose '²' passes str.isdigit() but not int() (a 500 instead of a 401)."""
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


async def read_limited(request: Request, *, limit: int, code: str) -> bytes:
    """The raw body, refused (413) as soon as its declared or streamed length passes `limit`."""
    declared = header_number(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise BatchTooLarge(code, f"the body is limited to {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BatchTooLarge(code, f"the body is limited to {limit} bytes")
    return bytes(body)


async def read_batch(request: Request) -> list[bytes]:
    """The decoded records of an upload body, refusing oversized or ill-formed bodies early."""
    body = await read_limited(request, limit=MAX_BATCH_BODY_BYTES, code="batch_too_large")
    try:
        payload: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack (a few kB of "[" do it).
        raise InvalidJson("invalid_json", "the body is not JSON") from None
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, str) for r in records):
        raise InvalidInput("invalid_batch", 'the body is {"records": [<base64 string>, ...]}')
    if len(records) > MAX_RECORDS_PER_BATCH:
        raise InvalidInput("invalid_batch", f"at most {MAX_RECORDS_PER_BATCH} records per batch, got {len(records)}")
    decoded = []
    for index, text in enumerate(records):
        try:
            decoded.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidInput("invalid_batch", f"record {index} is not valid base64") from None
    return decoded


@router.post("/{terminal_id}/batches", response_class=Response, openapi_extra=_BATCH_BODY,
             responses={200: {"model": BatchOut, "description": "one result per record"}}
             | error_responses(400, 403, 413, 422))
def upload_batch(
    terminal_id: int, records: Annotated[list[bytes], Depends(read_batch)], session: SessionDep, settings: SettingsDep
) -> Response:
    # Decoding and verification need no database: done first, outside the writer's turn, so that
    # they overlap (on the other core, without the GIL) with the transaction of another upload.
    prepared = prepare_batch(terminal_id=terminal_id, raw_records=records)
    with writer_turn(session):
        result = ingest_prepared(session, prepared, settings=settings)
        session.commit()
    return Response(content=batch_response_json(result), media_type="application/json")


def batch_response_json(result: BatchResult) -> bytes:
    """The upload response as JSON bytes, straight from the results (no response model to
    validate: it is the hot path). The usual result, an accepted or duplicate record, is written
    by hand, a few times cheaper than a dict per record through json.dumps, with the very bytes
    json.dumps(separators=(",", ":")) writes: int seqs, and statuses that are plain ASCII words;
    any other result (no seq, a reason, a detail) goes through json.dumps."""
    items = []
    for r in result.results:
        if r.reason is None and r.detail is None and r.seq is not None:
            items.append(f'{{"index":{r.index},"seq":{r.seq},"status":"{r.status.value}"}}')
            continue
        item: dict[str, object] = {"index": r.index, "seq": r.seq, "status": r.status.value}
        if r.reason is not None:
            item["reason"] = r.reason.value
        if r.detail is not None:
            item["detail"] = r.detail
        items.append(json.dumps(item, separators=(",", ":")))
    return f'{{"results":[{",".join(items)}],"acked_seq":{result.acked_seq}}}'.encode()


@router.get("/{terminal_id}/sync", responses={200: {"model": SyncOut}} | error_responses(401, 403, 422))
def sync(
    terminal_id: int,
    session: SessionDep,
    settings: SettingsDep,
    since: Annotated[int, Query(ge=0, le=MAX_SINCE)] = 0,
    x_caisse_time: Annotated[str | None, Header()] = None,
    x_caisse_signature: Annotated[str | None, Header()] = None,
    x_caisse_firmware: Annotated[str | None, Header(description="the terminal's firmware version, not signed")] = None,
    x_caisse_health: Annotated[str | None, Header(description="the terminal's health report, base64 JSON (v2)")] = None,
    x_caisse_health_signature: Annotated[str | None, Header(description="its signature, 128 hex characters")] = None,
    v: Annotated[int, Query(ge=min(SYNC_VERSIONS), le=max(SYNC_VERSIONS),
                            description="sync format version (docs/protocol.md); 1 when absent")] = 1,
) -> dict[str, Any]:
    time_s = header_number(x_caisse_time)
    response = sync_terminal(
        session, terminal_id=terminal_id, time_s=time_s, since=since, signature_hex=x_caisse_signature,
        now_s=int(time.time()), settings=settings, firmware_version=x_caisse_firmware, version=v,
    )
    if x_caisse_health is not None and time_s is not None:  # authenticated above, or it raised
        record_report(session, terminal_id=terminal_id, time_s=time_s, header=x_caisse_health,
                      signature_hex=x_caisse_health_signature)
    session.commit()
    return response.as_json()


async def read_code_failures(request: Request) -> bytes:
    """The raw body of a code-failures report, refused early when over its limit."""
    return await read_limited(request, limit=MAX_FAILURES_BODY_BYTES, code="body_too_large")


_CODE_FAILURES_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary", "description": "packed 15-byte entries (docs/protocol.md)"}}}}}


@router.post("/{terminal_id}/code-failures", openapi_extra=_CODE_FAILURES_BODY,
             responses=error_responses(401, 403, 413, 422))
def report_code_failures(
    terminal_id: int,
    body: Annotated[bytes, Depends(read_code_failures)],
    session: SessionDep,
    settings: SettingsDep,
    x_caisse_time: Annotated[str | None, Header()] = None,
    x_caisse_signature: Annotated[str | None, Header()] = None,
) -> dict[str, int]:
    """Wrong member codes counted by the terminal since its last report (docs/protocol.md)."""
    recorded = record_code_failures(session, terminal_id=terminal_id, time_s=header_number(x_caisse_time),
                                    signature_hex=x_caisse_signature, body=body, now_s=int(time.time()), settings=settings)
    session.commit()
    return {"recorded": recorded}
