"""What the CLI checks before it starts: misspelt ``ASSISTD_*`` variables, a missing model
backend, and a database that cannot be reached, each told in one line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from pydantic import BaseModel

from assistd.core.config import Settings

NOT_SETTINGS = frozenset(
    {
        # docker-compose's own variables (.env beside docker-compose.yml), and the tests'.
        "ASSISTD_BASE",
        "ASSISTD_DB_PORT",
        "ASSISTD_HTTP_PORT",
        "ASSISTD_IMAGE",
        "ASSISTD_PG_IMAGE",
        "ASSISTD_SANDBOX_BASE",
        "ASSISTD_TEST_IN_PROCESS",
    }
)
"""``ASSISTD_*`` names that are used, though not by the server's settings."""


def setting_names(model: type[BaseModel] = Settings, prefix: str = "ASSISTD_") -> list[str]:
    """Every environment variable the settings read (nested groups joined with ``__``)."""
    names: list[str] = []
    for name, field in model.model_fields.items():
        env = prefix + name.upper()
        names.append(env)
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names.extend(setting_names(kind, env + "__"))
    return names


def unknown_settings(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``ASSISTD_*`` variables no setting reads, each with the closest valid name (if any)."""
    known = setting_names()
    valid = set(known) | NOT_SETTINGS
    out: list[tuple[str, str | None]] = []
    for key in sorted(environ):
        name = key.upper()  # pydantic-settings matches names regardless of case
        if name.startswith("ASSISTD_") and name not in valid:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            out.append((key, close[0] if close else None))
    return out


def backend_problem(environ: Mapping[str, str], settings: Settings) -> str | None:
    """Why runs will fail for want of a model backend, naming the variables to set; ``None``
    when one is configured."""
    if settings.models.models_file is not None:
        return None
    if environ.get("OPENAI_API_KEY") or environ.get("OPENAI_BASE_URL"):
        return None
    if environ.get("AZURE_OPENAI_ENDPOINT"):
        if environ.get("OPENAI_API_VERSION") or environ.get("AZURE_OPENAI_API_VERSION"):
            return None
        return (
            "AZURE_OPENAI_ENDPOINT is set without an API version: runs will fail until "
            "OPENAI_API_VERSION (or AZURE_OPENAI_API_VERSION) is set, e.g. 2024-10-21"
        )
    return (
        "no model backend is configured, so runs will fail: set OPENAI_API_KEY (OpenAI; "
        "with OPENAI_BASE_URL for a compatible server), or AZURE_OPENAI_ENDPOINT, "
        "AZURE_OPENAI_API_KEY and OPENAI_API_VERSION (Azure OpenAI), or "
        "ASSISTD_MODELS__MODELS_FILE (a file of named backends)"
    )


_PASSWORD = re.compile(r"(?P<head>://[^:/@]*:)(?P<password>[^/]*)@")
"""The password of a URL: up to its last ``@`` before the path (an unescaped ``@`` in it
included)."""


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return _PASSWORD.sub(r"\g<head>***@", url, count=1)


def password(url: str) -> str | None:
    """The password written in ``url``, if any (to keep it out of error texts)."""
    found = _PASSWORD.search(url)
    return found.group("password") if found and found.group("password") else None


def cause(exc: BaseException) -> str:
    """The innermost reason of a database error, on one line."""
    inner: BaseException = getattr(exc, "orig", None) or exc
    text = " ".join(part.strip() for part in str(inner).splitlines() if part.strip())
    return text or type(inner).__name__
