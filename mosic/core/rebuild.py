"""Everything derived from the clips, rebuilt from them in place (``mosic reindex``)."""

from __future__ import annotations

from mosic.core.aggregates import Aggregates
from mosic.core.scanning import directories
from mosic.persistence import search


async def reindex(db, progress=None) -> None:
    """Rebuild every derived row (albums, artists, genres, folder counts, the music folders'
    directory tree) and the search index from the clips; ``progress(n)`` hears of each batch
    of clips regrouped."""
    await Aggregates(db=db).rebuild(progress)
    await directories.rebuild(db)
    await search.rebuild(db)
