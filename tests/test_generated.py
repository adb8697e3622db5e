"""Generated input: schemathesis derives requests from ``/openapi.json`` (valid and invalid,
headers, queries, bodies) and sends them to a real ``mosic serve`` on SQLite and PostgreSQL;
every answer must be no 5xx, a status, content type and body the document allows.

Bounded and deterministic for CI (``EXAMPLES`` per operation, a fixed seed); the README's
"Test it" section gives the command for a longer run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LOCAL_BACKENDS
from tests.support.server import mosic_serve

EXAMPLES = int(os.environ.get("MOSIC_FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("MOSIC_FUZZ_SEED", "20261201"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
RUN_TIMEOUT_S = 900
HOOKS = "tests.support.schemathesis_hooks"
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
    "schemathesis"
)


def schemathesis_command(base: str, api_key: str, examples: int, seed: int) -> list[str]:
    assert SCHEMATHESIS, "install the test extras: pip install -e '.[test]' (schemathesis)"
    return [
        SCHEMATHESIS,
        "run",
        f"{base}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--header",
        f"X-API-Key: {api_key}",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "20",
        "--no-color",
    ]


def schemathesis_env() -> dict[str, str]:
    root = str(Path(__file__).parents[1])
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": python_path, "SCHEMATHESIS_HOOKS": HOOKS}


@pytest.fixture(params=LOCAL_BACKENDS)
def server(request, tmp_path):
    settings = {}
    if request.param == "postgresql":
        pg = request.getfixturevalue("fresh_postgres_db")
        settings = {
            "MOSIC_DB_HOST": pg.host,
            "MOSIC_DB_PORT": str(pg.port),
            "MOSIC_DB_USER": pg.user,
            "MOSIC_DB_NAME": pg.name,
        }
    with mosic_serve(tmp_path / "data", **settings) as running:
        yield running


def test_generated_requests_get_documented_answers_and_never_a_5xx(server):
    run = subprocess.run(
        schemathesis_command(server.base, server.api_key, EXAMPLES, SEED),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=server.data_dir,
        env=schemathesis_env(),
    )
    report = run.stdout[-8000:] + run.stderr[-2000:]
    # The server's own log says why, when a request failed (a 503 names no cause to clients).
    assert run.returncode == 0, report + "\n--- server log ---\n" + server.output()[-4000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated, report
    assert int(generated.group(1)) >= EXAMPLES  # it really sent something
    log = server.output()
    assert "Traceback" not in log, log[-3000:]
    assert not re.search(r"mosic\.access: \S+ \S+ 5\d\d ", log), "a 5xx in the access log"
