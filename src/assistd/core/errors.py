"""Domain errors. Each carries the HTTP status and the fields of OpenAI's error envelope.

* AssistdError                      500 server_error
  + InvalidRequestError             400 invalid_request_error
    - ConflictingStateError         400 (a run is active, wrong run status, …)
  + AuthenticationError             401
  + NotFoundError                   404
  + PayloadTooLargeError            413
  + RateLimitError                  429 (a model backend's, passed on)
  + BackendUnavailableError         502 (a model backend failed)

One handler in ``assistd.web.errors`` renders them as
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any


class AssistdError(Exception):
    """Base class: an error the API reports to its caller."""

    status_code = 500
    error_type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error envelope."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(AssistdError):
    """The request is malformed or not allowed in the current state."""

    status_code = 400
    error_type = "invalid_request_error"


class ConflictingStateError(InvalidRequestError):
    """The object's state forbids the operation (OpenAI uses 400, never 409, for these)."""


class AuthenticationError(AssistdError):
    """Missing or wrong API key."""

    status_code = 401
    error_type = "invalid_request_error"


class NotFoundError(AssistdError):
    """The object does not exist in the caller's project."""

    status_code = 404
    error_type = "invalid_request_error"

    @classmethod
    def for_object(cls, kind: str, object_id: str, param: str | None = None) -> NotFoundError:
        """OpenAI's wording: ``No assistant found with id 'asst_x'.``."""
        return cls(f"No {kind} found with id '{object_id}'.", param=param)


class PayloadTooLargeError(AssistdError):
    """The request body exceeds a configured limit."""

    status_code = 413
    error_type = "invalid_request_error"


class RateLimitError(AssistdError):
    """A model backend is rate limiting the requests passed on to it."""

    status_code = 429
    error_type = "rate_limit_exceeded"


class BackendUnavailableError(AssistdError):
    """A model backend failed, could not be reached or refused assistd's own credentials."""

    status_code = 502
    error_type = "server_error"
