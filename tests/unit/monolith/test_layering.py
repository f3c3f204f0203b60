"""The monolith stands above the code it reuses: nothing in the package below it imports it.

The monolith reuses the domain, the services' stores and the gateway's HTTP pieces. If one of
those imported ``bookstore.monolith`` in turn, the services would depend on Phase 1 and could
no longer be deployed without it. (The benchmarks, above everything, may import it.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "bookstore"
MONOLITH = PACKAGE / "monolith"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_module_outside_the_monolith_imports_it() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if MONOLITH not in path.parents
        and any(
            name == "bookstore.monolith" or name.startswith("bookstore.monolith.")
            for name in imported_modules(path)
        )
    ]
    assert offenders == []
