"""The web player: a page for people at ``/``, its files under ``/web/``.

An HTTP edge beside ``mosic.api`` and independent of it: the page talks to Mosic only through
the public API and signed links, like any other client.
"""
