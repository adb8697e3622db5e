"""A clip's columns: those a new row starts with, and those an audio file fills in (title and
description, tags, stream facts), for an upload, a library file and a re-read alike.

``MEDIA_VERSION`` is the version of these rules; clips read under an older one are read
again (``mosic.core.rereading``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from mosic.core import audio, grouping, replay_gain
from mosic.core.listing import filter_keys
from mosic.core.text import (
    DESCRIPTION_MAX,
    UNTITLED,
    printable,
    search_text_for,
    title_from_filename,
)
from mosic.media.storage import Incoming
from mosic.persistence.models import TAG_MAX, TITLE_MAX, utcnow

# The version of the rules that read tags from files. Clips whose ``media_version`` is older
# (or null: added before the column existed) are read again. 1: tags, cover and peaks;
# 2: their lyrics too (``clip_lyrics``), all a version-1 clip lacks; 3: their ReplayGain
# tags, and their loudness measured when the tags have none (``replay_gain``), all a
# version-2 clip lacks.
MEDIA_VERSION = 3
BEFORE_LYRICS = 1
BEFORE_LOUDNESS = 2


@dataclass
class UploadForm:
    """What a multipart upload carried besides the file itself."""

    filename: str | None = None
    title: str | None = None
    description: str | None = None
    owner_id: int | None = None  # the uploader (a user id)


def new_clip_row(**fields) -> dict:
    """The columns of a new clip: ``fields`` plus the id, counters, times and search text."""
    now = utcnow()
    row = {
        "id": uuid.uuid4(),
        "play_count": 0,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    row["search_text"] = search_text_for(
        row["title"], row.get("description"), row.get("artist"), row.get("album")
    )
    row.update(filter_keys(row))
    row.update(grouping.song_ids(row))
    return row


def upload_fields(info: audio.AudioInfo, form: UploadForm) -> dict:
    """Title and description (form fields win over tags, tags over the file name) and tags."""
    title = (
        form.title
        or printable(info.title, TITLE_MAX)
        or title_from_filename(form.filename)
        or UNTITLED
    )
    description = (
        form.description
        if form.description is not None
        else printable(info.comment, DESCRIPTION_MAX)
    )
    return {
        "title": title,
        "description": description,
        "duration": info.duration,
        "artist": printable(info.artist, TAG_MAX),
        "album": printable(info.album, TAG_MAX),
        **tag_fields(info),
        "media_version": MEDIA_VERSION,
    }


def tag_fields(info: audio.AudioInfo) -> dict:
    """The full tags and stream facts, cleaned like every text read from a file, and the
    ReplayGain figures the tags hold (only those: a measured one is never overwritten)."""
    return {
        **replay_gain.tag_columns(info.replay_gain),
        "genre": printable(info.genre, TAG_MAX),
        "album_artist": printable(info.album_artist, TAG_MAX),
        "track": info.track,
        "disc": info.disc,
        "year": info.year,
        "bitrate": info.bitrate,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
    }


def file_fields(incoming: Incoming, info: audio.AudioInfo) -> dict:
    """Where an upload's bytes are stored: named by their hash, with their type's extension."""
    return {
        "content_type": info.content_type,
        "size": incoming.size,
        "sha256": incoming.sha256,
        "file_name": incoming.sha256 + info.extension,
    }
