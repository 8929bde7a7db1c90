"""The library does not reach up into its command-line layer (issue 22, item 5): `commands/` and
`cli.py` build on the library, never the other way round (a cohort worker, the service or a
script must not need the CLI's argument handling to build a predictor)."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "SegMoTELib"
CLI_LAYER = ("commands", "cli")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`, relative imports resolved."""
    package = path.relative_to(LIBRARY.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [(node.lineno, f"{module}.{alias.name}" if not node.module else module) for alias in node.names]
    return found


def test_no_library_module_imports_the_command_line_layer():
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        parts = path.relative_to(LIBRARY).with_suffix("").parts
        if parts[0] in CLI_LAYER:
            continue
        for line, module in _imported_modules(path):
            names = module.split(".")
            if names[0] == "SegMoTELib" and len(names) > 1 and names[1] in CLI_LAYER:
                offenders.append(f"{path.relative_to(LIBRARY.parent)}:{line} imports {module}")
    assert not offenders, "\n".join(offenders)
