"""Sustained load, bounded: 30 s of listing, streaming with seeks and probes, uploads and
deletes and stats from six client threads against a real ``mosic serve`` on PostgreSQL. No
5xx, no lost play (the counts equal the play-counting requests sent), memory flat.
``bench/soak.py`` runs the same for ten minutes."""

from __future__ import annotations

from tests.support.server import mosic_serve
from tests.support.soak import Soak

SECONDS = 30
# Generous: a leak of even a few hundred bytes per request passes this only if it is tiny;
# the point is "flat", not a number (allocator arenas and caches settle in the first seconds).
RSS_GROWTH_MAX_MIB = 40


def test_a_30_second_soak_on_postgres_loses_no_play_and_no_request(fresh_postgres_db, tmp_path):
    pg = fresh_postgres_db
    with mosic_serve(
        tmp_path / "data",
        MOSIC_DB_HOST=pg.host,
        MOSIC_DB_PORT=str(pg.port),
        MOSIC_DB_USER=pg.user,
        MOSIC_DB_NAME=pg.name,
    ) as server:
        result = Soak(server, SECONDS).run()
        print(result.summary())
        assert result.errors == [], result.summary()
        assert result.server_errors == 0
        assert result.requests > 100, result.summary()
        assert {"play", "seek", "upload", "stats", "list"} <= set(result.by_action)
        assert result.lost_plays == 0, result.summary()
        assert result.plays_counted == dict(result.plays_sent)
        assert result.plays_metric == sum(result.plays_sent.values())
        assert result.rss_end_mib - result.rss_start_mib < RSS_GROWTH_MAX_MIB, result.summary()
        assert "Traceback" not in server.output()
