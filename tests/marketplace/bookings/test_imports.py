"""Issue 9: imports flow one way, upward (ARCHITECTURE.md). The booking app is below payments,
ledger, payouts, disputes and reviews, so none of its modules imports them; the workflows that span
those layers (expiry voids the authorisation, closing publishes the reviews) live in the higher app.

The admin module is a door (ARCHITECTURE.md: the doors may call any app), so it is not checked.
"""

import ast
from pathlib import Path

import pytest

import marketplace.bookings

HIGHER_APPS = ("payments", "ledger", "payouts", "disputes", "reviews")
DOORS = {"admin.py"}
BOOKINGS = Path(marketplace.bookings.__file__).parent
MODULES = sorted(p for p in BOOKINGS.rglob("*.py") if p.name not in DOORS and "migrations" not in p.parts)


def _imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at its top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _reaches_up(name: str) -> bool:
    return any(name == f"marketplace.{app}" or name.startswith(f"marketplace.{app}.") for app in HIGHER_APPS)


def test_bookings_modules_are_found():
    assert {"services.py", "timers.py", "tasks.py"} <= {p.name for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(BOOKINGS)))
def test_bookings_module_imports_no_higher_app(path):
    # given a module of the booking app  # when its imports are read  # then none reaches up
    assert [name for name in _imported_modules(path) if _reaches_up(name)] == []
