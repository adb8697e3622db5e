"""``mosic serve`` with some settings replaced on the settings object: for what no variable
sets (the minimum body rate's 30 s window), so that a test sees a rule act in seconds.

``python -m tests.support.serve_settings '{"body_rate_window_s": 3}'``; everything else comes
from the environment, as for ``mosic serve``.
"""

from __future__ import annotations

import json
import sys

from mosic.cli.serve import serve
from mosic.observability.logs import configure_logging
from mosic.settings import load_settings


def main() -> int:
    settings = load_settings(env_file=None).replace(**json.loads(sys.argv[1]))
    configure_logging(settings)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
