"""``mosic.asgi:app`` for running under any ASGI server, settings from the environment.

``mosic serve`` is the usual way in: it also applies migrations first.
"""

from mosic.app import create_app
from mosic.settings import load_settings

app = create_app(load_settings())
