"""A bounded soak: ten minutes (by default) of mixed traffic against a real ``mosic serve`` on
PostgreSQL: listing and searching, whole plays, seeks and probes, HEADs, stats, uploads each
followed by a delete, from six client threads. Reported: requests and their statuses, plays
sent against plays counted (in the rows and in ``mosic_plays_total``), and the server's
resident memory at the start, the end and its peak (of the server process: with
``--workers`` above 1 that is gunicorn's arbiter, so keep the default 1 to watch memory).
Exit status 1 on any 5xx, unexpected status, lost play, or memory growth past the bound.

The traffic is ``tests.support.soak`` (the test suite runs it for 30 s, tests/test_soak.py).

Run: ``python -m bench.soak [--seconds 600] [--workers 1] [--seed 1]``
(``MOSIC_TEST_DATABASE_URL`` to use your PostgreSQL instead of a throwaway cluster).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

# tests.support (the traffic, the server, the throwaway PostgreSQL) lives beside bench/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mosic.settings import parse_database_url  # noqa: E402
from tests.support.postgres import configured_or_throwaway  # noqa: E402
from tests.support.server import mosic_serve  # noqa: E402
from tests.support.soak import Soak  # noqa: E402

DEFAULT_SECONDS = 600
RSS_GROWTH_MAX_MIB = 40


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with configured_or_throwaway() as url, tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        pg = parse_database_url(url)
        with mosic_serve(
            Path(tmp) / "data",
            "--workers",
            str(args.workers),
            metrics_port=True,
            MOSIC_DB_HOST=pg.host,
            MOSIC_DB_PORT=str(pg.port),
            MOSIC_DB_USER=pg.user,
            MOSIC_DB_NAME=pg.name,
        ) as server:
            result = Soak(server, args.seconds, seed=args.seed).run()
    print(result.summary())
    for action, status, text in result.errors[:20]:
        print(f"  unexpected: {action} -> {status}: {text}")
    growth = result.rss_end_mib - result.rss_start_mib
    ok = (
        not result.errors
        and result.server_errors == 0
        and result.lost_plays == 0
        and result.plays_metric == sum(result.plays_sent.values())
        and growth < RSS_GROWTH_MAX_MIB
    )
    print("soak:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
