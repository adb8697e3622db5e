"""What a Subsonic method receives: the request, its parameters and who is calling."""

from __future__ import annotations

from dataclasses import dataclass

from mosic.api.subsonic.auth import Caller
from mosic.api.subsonic.request import Params
from mosic.core.keys import Folders


@dataclass
class Call:
    req: object
    resp: object
    params: Params
    caller: Caller | None

    @property
    def user(self) -> str:
        """The caller's user name."""
        return self.caller.user.name

    @property
    def folders(self) -> Folders:
        """The music folders the caller reads."""
        return self.caller.grant.folders

    @property
    def client(self) -> str:
        return (self.params.one("c") or "unknown")[:200]
