"""Running Mosic under gunicorn with uvicorn workers (``mosic serve --workers N``)."""

from __future__ import annotations

import math

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from mosic.cli.connections import connection_class
from mosic.observability.logs import logging_config
from mosic.settings import Settings

# Each worker stops within MOSIC_SHUTDOWN_GRACE_S by itself (uvicorn's graceful timeout and
# the tails); gunicorn's own kill comes this much later, a backstop that never races it.
GRACEFUL_MARGIN_S = 5
KEEPALIVE_S = 5


def child_exit(server, worker) -> None:
    # A dead worker's live gauges (active streams, pool) must stop counting in /metrics.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_class(settings: Settings) -> type[UvicornWorker]:
    """uvicorn-worker's worker with Mosic's connections (mosic.cli.connections) and grace
    period. (gunicorn takes a class as its worker class; the workers fork from the arbiter,
    so a class made here needs no import path.)"""
    config = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": connection_class(settings),
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
    }
    return type("MosicWorker", (UvicornWorker,), {"CONFIG_KWARGS": config})


class MosicGunicorn(BaseApplication):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        binds = [f"{host}:{s.port}"]
        if s.metrics_port:
            binds.append(f"{host}:{s.metrics_port}")
        options = {
            "bind": binds,
            "workers": s.workers,
            "worker_class": worker_class(s),
            "graceful_timeout": math.ceil(s.shutdown_grace_s) + GRACEFUL_MARGIN_S,
            # gunicorn's 2 s default closes idle connections under a client's feet; 5 s is
            # uvicorn's own default and outlives a reverse proxy's usual reuse window.
            "keepalive": KEEPALIVE_S,
            "accesslog": None,
            "logconfig_dict": logging_config(s),
            "loglevel": s.log_level.lower(),
            "child_exit": child_exit,
            "proc_name": "mosic",
            # gunicorn 27 otherwise opens a control socket under $HOME, which in the
            # container is read-only and on a laptop is not ours to litter.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        # Runs in each worker after the fork, so every worker builds its own app and pool.
        from mosic.app import create_app

        return create_app(self.settings)
