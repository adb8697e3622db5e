"""Migrations stay compatible with the previous release (README: "Upgrades, rollbacks and
migrations"): additive first, destructive a release later.

During a rolling update the previous release's pods run on the new schema, and so does the
previous release after `helm rollback`. So a migration may add, never drop, rename or retype,
unless it says why on a line `# destructive: <reason>`. This test reads every migration's
source; it finds the package wherever the layout keeps it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
from contextlib import suppress

import pytest

PACKAGES = ("mosic.persistence.migrations", "mosic.migrations")
MARKER = re.compile(r"^\s*# destructive: \S.*$", re.M)

# playhouse.migrate operations (and peewee's) that break the previous release's queries.
DESTRUCTIVE_CALLS = {
    "drop_column",
    "rename_column",
    "drop_table",
    "drop_tables",
    "rename_table",
    "alter_column_type",
    "add_not_null",
    "drop_index",
    "drop_constraint",
}
DESTRUCTIVE_SQL = re.compile(
    r"\bDROP\s+(TABLE|COLUMN|INDEX|CONSTRAINT|VIEW)\b"
    r"|\bRENAME\s+(TO|COLUMN)\b"
    r"|\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b"
    r"|\bSET\s+NOT\s+NULL\b",
    re.I,
)


def migrations_package():
    for name in PACKAGES:
        with suppress(ModuleNotFoundError):
            return importlib.import_module(name)
    pytest.fail(f"no migrations package: tried {', '.join(PACKAGES)}")


def migration_sources() -> dict[str, str]:
    package = migrations_package()
    sources = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.name[:4].isdigit():
            spec = importlib.util.find_spec(f"{package.__name__}.{module.name}")
            with open(spec.origin, encoding="utf-8") as source:
                sources[module.name] = source.read()
    return sources


def _keyword_names(call: ast.Call) -> set[str]:
    return {k.arg for k in call.keywords if k.arg}


def _is_true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def breaking_operations(source: str) -> list[str]:
    """What in ``source`` the previous release could not live with (empty when marked)."""
    if MARKER.search(source):
        return []
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DESTRUCTIVE_CALLS:
                found.append(f"line {node.lineno}: {name}()")
            # A NOT NULL column without a default: the previous release's INSERTs fail.
            if name == "add_column" and len(node.args) >= 3 and isinstance(node.args[2], ast.Call):
                field = node.args[2]
                if not _is_true(field, "null") and "default" not in _keyword_names(field):
                    found.append(f"line {node.lineno}: add_column() of a NOT NULL column")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = DESTRUCTIVE_SQL.search(node.value)
            if match:
                found.append(f"line {node.lineno}: SQL {match.group(0)!r}")
    return found


def test_there_are_migrations_to_check():
    sources = migration_sources()
    assert sources, "no numbered migration modules found"
    assert all(name[:4].isdigit() for name in sources)


def test_every_migration_is_additive_or_says_why_not():
    problems = {}
    for name, source in migration_sources().items():
        found = breaking_operations(source)
        if found:
            problems[name] = found
    assert not problems, (
        "migrations that break the previous release (see README, 'Upgrades, rollbacks and "
        f"migrations'; mark a deliberate one with '# destructive: <why>'): {problems}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "def apply(db, migrator):\n    migrate(migrator.drop_column('clip', 'album'))\n",
        "def apply(db, migrator):\n    migrate(migrator.rename_column('clip', 'a', 'b'))\n",
        "def apply(db, migrator):\n    db.drop_tables([Clip])\n",
        "def apply(db, m):\n    migrate(m.add_column('clip', 'x', peewee.IntegerField()))\n",
        "def apply(db, migrator):\n    db.execute_sql('ALTER TABLE clip DROP COLUMN album')\n",
        "def apply(db, m):\n    db.execute_sql('ALTER TABLE clip ALTER COLUMN size TYPE text')\n",
        "def apply(db, m):\n    db.execute_sql('ALTER TABLE clip RENAME TO clips')\n",
    ],
)
def test_the_check_catches_what_breaks_the_previous_release(source):
    assert breaking_operations(source)
    marked = "# destructive: release 0.3 stopped reading it\n" + source
    assert breaking_operations(marked) == []


@pytest.mark.parametrize(
    "source",
    [
        "migrate(m.add_column('clip', 'x', peewee.IntegerField(null=True)))\n",
        "migrate(m.add_column('clip', 'x', peewee.IntegerField(default=0)))\n",
        "def apply(db, migrator):\n    db.create_tables([Clip])\n",
        "def apply(db, m):\n    migrate(m.add_index('clip', ('title',), False))\n",
        # A comment that mentions dropping is not an operation.
        "def apply(db, m):\n    # we never drop_column here\n    db.create_tables([Clip])\n",
    ],
)
def test_additive_changes_pass(source):
    assert breaking_operations(source) == []
