"""The web player: a page for people at ``/``, its files under ``/web/``; and a share's page
at ``/share/{id}`` (``share_page``), which plays that share's songs to anyone with its link.

An HTTP edge beside ``mosic.api`` and independent of it: the page talks to Mosic only through
the public API and signed links (a share's page: its share-scoped routes), like any other
client.
"""
