"""Logging set-up: human-readable text by default, one JSON object per line as an option."""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config

from mosic.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    # Fields an access-log record may carry (see mosic.observability.access_log).
    EXTRA_FIELDS = ("method", "route", "status", "duration_ms", "bytes", "client")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(settings: Settings) -> dict:
    """One logging set-up for Mosic, uvicorn and gunicorn alike (``dictConfig`` form), so
    every line of a process comes out in the one chosen format."""
    formatter = {"()": JsonFormatter} if settings.log_format == "json" else {"format": TEXT_FORMAT}
    # Servers' loggers hand their records to the root handler; their own access logs stay
    # off, as Mosic writes one access line per request itself (without query strings).
    quiet = {"level": "WARNING", "handlers": [], "propagate": True}
    passthrough = {"level": settings.log_level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mosic": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "mosic",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": passthrough,
            "uvicorn.error": passthrough,
            "uvicorn.access": quiet,
            "gunicorn.error": passthrough,
            "gunicorn.access": quiet,
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
    # No format shows threads or processes: not looking them up per record is logging's own
    # advice for speed (every request writes a line).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
