"""Library directories remember their sidecar cover: the picture's stat (name, size,
modification time) and the stored blob it made. A rescan then sees a cover replaced in place
(same name, new bytes) by its stat alone, as it sees a changed track, without reading it.

Additive: two nullable columns; a directory with none is read once at its next scan.
"""

import peewee
from playhouse.migrate import migrate


def apply(db, migrator) -> None:
    migrate(
        migrator.add_column(
            "library_directory", "cover_stat", peewee.CharField(max_length=300, null=True)
        ),
        migrator.add_column(
            "library_directory", "cover_name", peewee.CharField(max_length=100, null=True)
        ),
    )
