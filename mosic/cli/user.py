"""``mosic user add|list|key|remove``: users and their keys from the command line (the same
rules as ``/users``). A new key is printed once, on standard output; nothing else is."""

from __future__ import annotations

import asyncio
import logging
import sys

from mosic.app import make_users
from mosic.core.users import BadUser, UserConflict, UserNotFound
from mosic.persistence.database import make_database
from mosic.persistence.models import ADMIN, ADMIN_ID, FULL_SCOPE, LISTENER, READ_SCOPE
from mosic.persistence.secrets import resolve_credentials
from mosic.settings import Settings

log = logging.getLogger("mosic")


def user(settings: Settings, args) -> int:
    """Run ``args.user_command``; exit status (1 for a refusal, with one line saying why)."""
    try:
        return asyncio.run(_run(settings, args))
    except (BadUser, UserConflict) as exc:
        log.error("%s", exc)
    except UserNotFound as exc:
        log.error("no user is named %r", str(exc))
    except Exception as exc:  # the database went away: one clear line, not a traceback
        log.error("mosic user %s failed: %s", args.user_command, exc)
    return 1


async def _run(settings: Settings, args) -> int:
    db = make_database(settings)
    users = make_users(settings, db, resolve_credentials(settings))
    try:
        if args.user_command == "add":
            folders = args.music_folders.split(",") if args.music_folders else None
            info, key = await users.add(args.name, ADMIN if args.admin else LISTENER, folders)
            log.info("added %s (%s); its key, shown this once:", info.user.name, info.user.role)
            print(key.key, flush=True)
        elif args.user_command == "key":
            made = await users.new_key(args.name, READ_SCOPE if args.read else FULL_SCOPE)
            log.info("a new %s key %s for %s, shown this once:", made.info.scope,
                     made.info.id, args.name)  # fmt: skip
            print(made.key, flush=True)
        elif args.user_command == "remove":
            await users.remove(args.name, heir=ADMIN_ID)  # its uploads become the admin's
            log.info("removed %s", args.name)
        else:
            for info in await users.list():
                folders = ",".join(info.user.music_folders or ()) or "every folder"
                sys.stdout.write(f"{info.user.name}\t{info.user.role}\t{folders}\n")
        return 0
    finally:
        await db.aio_close()
