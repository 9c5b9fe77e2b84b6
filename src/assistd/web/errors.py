"""Render every failure in OpenAI's error envelope with the right status."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistd.core.db import is_disconnect
from assistd.core.errors import AssistdError
from assistd.core.logs import Repeats

log = logging.getLogger(__name__)

_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: the API expects a JSON object "
    "as the request body, but what was sent was not valid JSON.)"
)

_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "NoneType": "null",
    "list": "an array",
    "dict": "an object",
}


def error_response(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON response carrying the error envelope."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _param(loc: Sequence[int | str], body: Any, kind: str = "missing") -> str | None:
    """Turn a pydantic location into OpenAI's dotted ``param`` (``tools[0].type``).

    Pydantic adds segments for union members and validators that are not keys of the
    request; walking the actual body drops them. A tagged union member's segment can also
    be a key (``{"type": "text", "text": …}`` fails at ``text``, ``text``): the tag is the
    segment equal to ``type`` that is followed by itself. A last segment that is no key of
    the body names a missing field only when ``kind`` is ``missing``; otherwise it is a
    union member (``literal['auto']``) and is dropped.
    """
    if not loc:
        return None
    source, path = loc[0], list(loc[1:])
    if source in ("query", "path", "header"):
        return str(path[0]) if path else None
    if source != "body":
        path = list(loc)
    parts: list[str] = []
    node = body
    for i, seg in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict) and not last and seg == node.get("type") == path[i + 1]:
            continue
        if isinstance(seg, int) and isinstance(node, list) and 0 <= seg < len(node):
            parts.append(f"[{seg}]")
            node = node[seg]
        elif (
            isinstance(seg, str)
            and isinstance(node, dict)
            and (seg in node or (last and kind == "missing"))
        ):
            parts.append(("." if parts else "") + seg)
            node = node.get(seg)
        elif last and isinstance(seg, str) and not parts:
            parts.append(seg)
    return "".join(parts) or None


def _is_shallow(kind: str) -> bool:
    """A wrong type or literal: what every non-matching member of a union reports."""
    return kind.endswith("_type") or kind in ("literal_error", "enum")


def _most_specific(errors: list[Any], body: Any) -> Any:
    """The error to report: the first one, unless it is only a union member's type mismatch.

    For ``str | list[Part]`` given ``[]`` pydantic reports the ``str`` member's type error
    first, then the ``list`` member's real problem (too short, a bad part type, …) on the
    same field; the latter is what the caller needs to hear.
    """
    first = errors[0]
    if not _is_shallow(str(first.get("type", ""))):
        return first
    base = _param(tuple(first.get("loc", ())), body, str(first.get("type", "")))
    if base is None:
        return first
    best, best_depth = first, len(base)
    for err in errors[1:]:
        param = _param(tuple(err.get("loc", ())), body, str(err.get("type", "")))
        if param is None or not (param == base or param.startswith((base + ".", base + "["))):
            continue
        if not _is_shallow(str(err.get("type", ""))):
            return err
        if len(param) > best_depth:
            best, best_depth = err, len(param)
    return best


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value).__name__, type(value).__name__)


def _describe(err: dict[str, Any], param: str | None) -> tuple[str, str | None]:
    """OpenAI-style message and code for one pydantic error."""
    kind: str = err.get("type", "")
    ctx: dict[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    name = param or "body"
    if kind == "missing":
        return f"Missing required parameter: '{name}'.", "missing_required_parameter"
    if kind == "extra_forbidden":
        return f"Unknown parameter: '{name}'.", "unknown_parameter"
    if kind == "object_above_max_properties" and "max" in ctx:
        return (
            f"Invalid '{name}': too many properties. Expected an object with at most "
            f"{ctx['max']} properties, but got an object with {ctx['n']} properties instead.",
            kind,
        )
    if kind == "string_above_max_length" and "metadata_key" in ctx:
        if ctx.get("part") == "key":
            return (
                f"Invalid '{name}': key too long. Expected a key with maximum length "
                f"{ctx['max']}, but got a key with length {ctx['n']} instead.",
                kind,
            )
        return (
            f"Invalid '{name}.{ctx['metadata_key']}': string too long. Expected a string with "
            f"maximum length {ctx['max']}, but got a string with length {ctx['n']} instead.",
            kind,
        )
    if kind in ("object_above_max_properties", "string_above_max_length"):
        return str(err["msg"]), kind
    if kind == "string_too_long":
        return (
            f"Invalid '{name}': string too long. Expected a string with maximum length "
            f"{ctx.get('max_length')}, but got a string with length {len(value or '')} instead.",
            "string_above_max_length",
        )
    if kind == "too_long":
        return (
            f"Invalid '{name}': array too long. Expected an array with maximum length "
            f"{ctx.get('max_length')}, but got an array with length {ctx.get('actual_length')}"
            " instead.",
            "array_above_max_length",
        )
    if kind == "too_short":
        return (
            f"Invalid '{name}': array too short. Expected an array with minimum length "
            f"{ctx.get('min_length')}, but got an array with length {ctx.get('actual_length')}"
            " instead.",
            "array_below_min_length",
        )
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return (
            f"Invalid '{name}': value below minimum. Expected a value >= {bound}, "
            f"but got {value!r} instead.",
            "integer_below_min_value" if isinstance(value, int) else "decimal_below_min_value",
        )
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return (
            f"Invalid '{name}': value above maximum. Expected a value <= {bound}, "
            f"but got {value!r} instead.",
            "integer_above_max_value" if isinstance(value, int) else "decimal_above_max_value",
        )
    if kind in ("literal_error", "enum", "union_tag_invalid"):
        expected = ctx.get("expected") or ctx.get("expected_tags") or ""
        shown = value if kind != "union_tag_invalid" else ctx.get("tag")
        return (
            f"Invalid value for '{name}': {shown!r}. Supported values are: {expected}.",
            "invalid_value",
        )
    if kind == "union_tag_not_found":
        return f"Missing required parameter: '{name}'.", "missing_required_parameter"
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "model_attributes_type":
        expected = kind.removesuffix("_type").removesuffix("_parsing")
        expected_name = {
            "string": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "a boolean",
            "list": "an array",
            "dict": "an object",
            "model_attributes": "an object",
        }.get(expected, expected)
        return (
            f"Invalid type for '{name}': expected {expected_name}, but got "
            f"{_type_name(value)} instead.",
            "invalid_type",
        )
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"Invalid '{name}': {msg}", "invalid_value"


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    body = getattr(exc, "body", None)
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    first = _most_specific(errors, body) if errors else {}
    if first.get("type") == "json_invalid":
        return error_response(400, _JSON_HINT)
    loc = tuple(first.get("loc", ()))
    if loc == ("body",) and first.get("type") in ("model_attributes_type", "dict_type"):
        return error_response(400, _JSON_HINT)
    ctx = first.get("ctx") or {}
    param = ctx.get("param") or _param(loc, body, str(first.get("type", "")))
    if first.get("type") in ("union_tag_invalid", "union_tag_not_found") and param:
        param += "." + str(ctx.get("discriminator", "'type'")).strip("'")
    message, code = _describe(first, param)
    if "metadata_key" in ctx and param:
        # Metadata errors are raised on the whole object; name the offending key under it.
        param += "." + str(ctx["metadata_key"])
    return error_response(400, message, param=param, code=code)


async def _assistd_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AssistdError)
    headers = dict(exc.headers)
    if exc.status_code >= 500:
        headers.setdefault("x-should-retry", "false")
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(404, f"Invalid URL ({request.method} {request.url.path})")
    if exc.status_code == 405:
        return error_response(405, f"Invalid method for URL ({request.method} {request.url.path})")
    return error_response(exc.status_code, str(exc.detail))


def _is_nul_error(exc: DataError) -> bool:
    """Postgres stores no NUL character, neither in text (refused by psycopg before sending)
    nor as ``\\u0000`` in jsonb (SQLSTATE 22P05, untranslatable character)."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "22P05" or "NUL (0x00)" in str(orig)


async def _data_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    if not _is_nul_error(exc):
        return await _unhandled_handler(request, exc)
    return error_response(
        400,
        "Invalid request: strings cannot contain NUL (\\u0000) characters.",
        code="invalid_value",
    )


async def _unencodable_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnicodeEncodeError)
    if exc.reason != "surrogates not allowed":
        return await _unhandled_handler(request, exc)
    # JSON allows a lone "\ud800"; such a string has no UTF-8 form to store.
    return error_response(
        400,
        "Invalid request: strings cannot contain unpaired Unicode surrogates.",
        code="invalid_value",
    )


_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
"""The database is out of reach or overloaded: the request may succeed if retried."""

_database_errors = Repeats(log)


async def _database_handler(request: Request, exc: Exception) -> JSONResponse:
    # Logged once per outage with a count, without the driver's text on the wire.
    _database_errors.failed("database unavailable", exc, traceback=False)
    health = getattr(request.app.state, "db_health", None)
    if health is not None and is_disconnect(exc):
        health.lost()
    return error_response(
        503,
        "The server cannot reach its database right now. Please retry shortly.",
        type_="server_error",
        code="service_unavailable",
        headers={"retry-after": "1"},
    )


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    headers = {"x-should-retry": "false"}
    # Starlette's ServerErrorMiddleware answers unhandled errors outside every other
    # middleware, so the request id middleware never sees this response: copy its id here.
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers["x-request-id"] = request_id
    return error_response(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type_="server_error",
        code="server_error",
        headers=headers,
    )


def install(app: FastAPI) -> None:
    """Register every exception handler on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(AssistdError, _assistd_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(DataError, _data_handler)
    app.add_exception_handler(UnicodeEncodeError, _unencodable_handler)
    for kind in _DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
