"""The Subsonic / OpenSubsonic API (``/rest/*``), a sibling of the REST resources over the
same domain layer: the library view (``mosic.core.library``), what the listener keeps
(``mosic.core.collection``), the catalogue's media and the one play recorder.

- ``endpoint``: the resource, auth, the ``WRITES`` set, dispatch;
- ``response``: the response model and its XML/JSON/JSONP renderings, error codes;
- ``request``: parameters (query and POST form); ``auth``: the three credential forms;
- ``shapes``: clips, albums, artists and playlists as Subsonic sees them;
- ``browse``, ``media``, ``keep``, ``lyrics``, ``sharing``: the methods.
"""

from mosic.api.subsonic.endpoint import WRITES, SubsonicApi

__all__ = ["WRITES", "SubsonicApi"]
