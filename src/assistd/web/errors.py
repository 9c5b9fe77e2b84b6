"""Render every failure in OpenAI's error envelope with the right status."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistd.core.errors import AssistdError

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


def _param(loc: Sequence[int | str], body: Any) -> str | None:
    """Turn a pydantic location into OpenAI's dotted ``param`` (``tools[0].type``).

    Pydantic adds segments for union members and validators that are not keys of the
    request; walking the actual body drops them.
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
        if isinstance(seg, int) and isinstance(node, list) and 0 <= seg < len(node):
            parts.append(f"[{seg}]")
            node = node[seg]
        elif isinstance(seg, str) and isinstance(node, dict) and (seg in node or last):
            parts.append(("." if parts else "") + seg)
            node = node.get(seg)
        elif last and isinstance(seg, str) and not parts:
            parts.append(seg)
    return "".join(parts) or None


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
    if kind in ("object_above_max_properties", "string_above_max_length") and "param" in ctx:
        return str(err["msg"]), kind
    if kind == "object_above_max_properties":
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
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return error_response(400, _JSON_HINT)
    loc = tuple(first.get("loc", ()))
    if loc == ("body",) and first.get("type") in ("model_attributes_type", "dict_type"):
        return error_response(400, _JSON_HINT)
    ctx = first.get("ctx") or {}
    param = ctx.get("param") or _param(loc, body)
    if first.get("type") in ("union_tag_invalid", "union_tag_not_found") and param:
        param += "." + str(ctx.get("discriminator", "'type'")).strip("'")
    message, code = _describe(first, param)
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


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type_="server_error",
        code="server_error",
        headers={"x-should-retry": "false"},
    )


def install(app: FastAPI) -> None:
    """Register every exception handler on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(AssistdError, _assistd_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
