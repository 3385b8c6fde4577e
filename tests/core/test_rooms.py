"""The house rules (the style guide's layout and "where SQL lives") that the code itself can
show: which room imports which, and which room writes SQL over which table. Read from the
source (ast), so a new import or a new string of SQL that breaks a rule fails here, and a fixed
crossing must leave the known list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import app.models  # noqa: F401 - every table on the metadata
from app.core.db import Base

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
# The style guide's "split a module near 400 lines"; a test file may be twice that.
MAX_LINES = {"app": 400, "bench": 400, "tests": 800}
ROOMS = ("core", "routing", "notifications", "cases", "feedback", "connectors", "reports", "web")
# Dependencies point one way; reports, connectors and web are imported by nothing but the app.
MAY_IMPORT = {
    "core": set(),
    "routing": {"core"},
    "notifications": {"core"},
    "cases": {"core", "routing", "notifications"},
    "feedback": {"core", "routing", "cases", "notifications"},
    "connectors": {"core", "routing", "cases", "notifications", "feedback"},
    "reports": {"core", "routing", "cases", "notifications", "feedback"},
    "web": {"core", "routing", "cases", "notifications", "feedback"},
}
# SQL that still reads another room's table, each with its reason (see the module it is in).
KNOWN_CROSSINGS = {
    # The closed loop counts the raw negative feedback in the statement that reads its facts,
    # and the facts of a case are worked out from its raw rows (feedback, cases, messages) in
    # the statement that reads or folds them, so that each answer is one snapshot.
    ("reports/closed_loop.py", "feedback"),
    ("reports/facts.py", "case_event"),
    ("reports/facts.py", "case_feedback"),
    ("reports/facts.py", "feedback"),
    ("reports/facts.py", "feedback_case"),
    ("reports/facts.py", "outbox_message"),
    # The scores take what the rollups do not hold (a bucket's ragged edges) from the raw rows,
    # in the same statement, so that the answer is one snapshot.
    ("reports/rollups.py", "feedback"),
}


def modules(room: str) -> list[Path]:
    return sorted((APP / room).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def imported_rooms(path: Path) -> set[str]:
    rooms = {name.split(".")[1] for name in imported_modules(path) if name.startswith("app.")}
    return rooms & set(ROOMS)


def owners() -> dict[str, str]:
    """Each table and the room whose models.py declares it."""
    found = {}
    for mapper in Base.registry.mappers:
        table = mapper.class_.__table__.name
        found[table] = mapper.class_.__module__.split(".")[1]
    return found


def strings(path: Path) -> list[str]:
    """The module's string literals, f-strings' literal parts included."""
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_every_room_imports_only_the_rooms_beneath_it() -> None:
    wrong = {
        (str(path.relative_to(APP)), other)
        for room in ROOMS
        for path in modules(room)
        for other in imported_rooms(path) - MAY_IMPORT[room] - {room}
    }
    assert wrong == set()


def test_a_rooms_sql_names_only_its_own_tables_but_the_known_crossings() -> None:
    tables = owners()
    assert {"feedback", "feedback_case", "case_feedback", "team", "outbox_message"} <= set(tables)
    sql = re.compile(
        r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(" + "|".join(sorted(tables, key=len)[::-1]) + r")\b"
    )
    crossings = {
        (str(path.relative_to(APP)), table)
        for room in ROOMS
        for path in modules(room)
        for text in strings(path)
        for table in sql.findall(text)
        if tables[table] != room
    }
    assert crossings == KNOWN_CROSSINGS


def test_modules_stay_small() -> None:
    """A module past its size is split by what it does, as app/connectors/rows.py was."""
    long = {
        str(path.relative_to(ROOT)): lines
        for folder, most in MAX_LINES.items()
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > most
    }
    assert long == {}


def test_no_benchmark_imports_another() -> None:
    """Benchmarks share bench/common.py and the private helpers (bench/_*.py), not each other."""
    benchmarks = {
        path.stem
        for path in (ROOT / "bench").glob("*.py")
        if not path.stem.startswith("_") and path.stem != "common"
    }
    crossing = {
        (path.stem, name.removeprefix("bench."))
        for path in sorted((ROOT / "bench").glob("*.py"))
        for name in imported_modules(path)
        if name.removeprefix("bench.") in benchmarks and name.startswith("bench.")
    }
    assert crossing == set()
