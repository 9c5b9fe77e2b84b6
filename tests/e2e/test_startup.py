"""Start-up as a newcomer meets it: a missing model backend and a misspelt setting are named
in a warning, ``.env`` in the current directory is read (the environment wins), and a
database that cannot be used ends the command with one line saying which and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from assistd.llm.chat import NoBackendError, router_from_environment
from tests.conftest import Database, free_port
from tests.e2e.test_logs import STAMP, base_env


def assistd(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistd", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def refused_url(user: str = "assistd", password: str = "s3cret-pw") -> str:
    """A Postgres URL nobody listens on."""
    return f"postgresql://{user}:{password}@127.0.0.1:{free_port()}/assistd"


def warnings_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if " WARNING " in line]


def test_no_backend_and_a_misspelt_setting_are_warned(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.update({"ASSISTD_PORTT": "1", "ASSISTD_DATABASE_URL": refused_url()})
    done = assistd(env, "serve", "--log-format", "text")
    assert done.returncode != 0
    warned = warnings_of(done.stderr)
    assert len(warned) == 2, done.stderr
    backend = next(line for line in warned if "model backend" in line)
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "OPENAI_API_VERSION",
        "ASSISTD_MODELS__MODELS_FILE",
    ):
        assert name in backend, backend
    misspelt = next(line for line in warned if "ASSISTD_PORTT" in line)
    assert misspelt.endswith("did you mean ASSISTD_PORT?"), misspelt

    # A nested setting's misspelling is matched against the nested names.
    env.pop("ASSISTD_PORTT")
    env.update({"OPENAI_API_KEY": "sk-x", "ASSISTD_WORKER__CONCURENCY": "8"})
    done = assistd(env, "worker", "--log-format", "text")
    warned = warnings_of(done.stderr)
    assert len(warned) == 1, done.stderr
    assert warned[0].endswith(
        "ASSISTD_WORKER__CONCURENCY is ignored; did you mean ASSISTD_WORKER__CONCURRENCY?"
    )


@pytest.mark.parametrize("case", ["refused", "no such database"])
def test_an_unusable_database_is_one_line(database: Database, tmp_path: Path, case: str) -> None:
    env = base_env(tmp_path)
    if case == "refused":
        url, reason = refused_url(), "Connection refused"
    else:
        parsed = make_url(database.url).set(database="no_such_db", password="s3cret-pw")
        url, reason = parsed.render_as_string(hide_password=False), '"no_such_db" does not exist'
    env.update({"ASSISTD_DATABASE_URL": url, "OPENAI_API_KEY": "sk-x"})
    done = assistd(env, "serve", "--log-format", "text")
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    line = lines[0]
    assert STAMP.match(line), line
    assert " ERROR " in line, line
    assert url.replace(":s3cret-pw@", ":***@") in line, line
    assert "s3cret-pw" not in line
    assert reason in line, line


def test_dotenv_in_the_current_directory(tmp_path: Path) -> None:
    """``.env`` supplies settings and the SDK's variables; the environment wins over it."""
    in_file = refused_url(user="fromfile")
    (tmp_path / ".env").write_text(
        f"ASSISTD_DATABASE_URL={in_file}\nOPENAI_API_KEY=sk-from-file\nASSISTD_LOG_FORMAT=text\n"
    )
    env = base_env(tmp_path / "data")
    done = assistd(env, "serve", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    # One line: the database of the file; no backend warning, as the file sets the key.
    assert len(lines) == 1, done.stderr
    assert in_file.replace(":s3cret-pw@", ":***@") in lines[0]

    from_env = refused_url(user="fromenv")
    done = assistd({**env, "ASSISTD_DATABASE_URL": from_env}, "serve", cwd=tmp_path)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert from_env.replace(":s3cret-pw@", ":***@") in lines[0]


def test_azure_endpoint_without_a_version_is_warned(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.update(
        {
            "AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com",
            "AZURE_OPENAI_API_KEY": "k",
            "ASSISTD_DATABASE_URL": refused_url(),
        }
    )
    warned = warnings_of(assistd(env, "worker", "--log-format", "text").stderr)
    assert len(warned) == 1
    assert "OPENAI_API_VERSION" in warned[0]
    # The name Azure's own samples use is read as well.
    env["AZURE_OPENAI_API_VERSION"] = "2024-10-21"
    assert warnings_of(assistd(env, "worker", "--log-format", "text").stderr) == []


def test_no_backend_error_names_the_setting() -> None:
    router = router_from_environment(env={})
    with pytest.raises(NoBackendError) as info:
        router.backend_for("gpt-4o")
    assert "ASSISTD_MODELS__MODELS_FILE" in info.value.message
    assert "ASSISTD_MODELS_FILE" not in info.value.message


def test_settings_that_do_not_parse_are_one_line_each(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.update({"ASSISTD_WORKER__LEASE_SECONDS": "soon", "ASSISTD_LOG_FORMAT": "text"})
    done = assistd(env, "migrate")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert STAMP.match(lines[0]), lines[0]
    assert "invalid setting ASSISTD_WORKER__LEASE_SECONDS" in lines[0]
