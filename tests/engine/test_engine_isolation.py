"""The engine, bidding and accounting layers never depend on the simulator, the CLI or reports.

The engine must run unchanged behind an HTTP service, where no simulated market exists; the
simulator is only one client of it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import quanzhan

ISOLATED = ("engine", "bidding", "accounting")
FORBIDDEN = ("quanzhan.sim", "quanzhan.cli", "quanzhan.report")
PACKAGE_ROOT = Path(quanzhan.__file__).resolve().parent


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every absolute module name an ``import`` or ``from`` statement names, relative resolved."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            names.append(target)
            # ``from quanzhan import sim`` names the forbidden module through its alias.
            names.extend(f"{target}.{alias.name}" for alias in node.names)
    return names


def _module_files() -> list[Path]:
    files = sorted(p for pkg in ISOLATED for p in (PACKAGE_ROOT / pkg).rglob("*.py"))
    return files


def test_the_isolated_packages_have_modules() -> None:
    files = _module_files()
    for pkg in ISOLATED:
        assert PACKAGE_ROOT / pkg / "__init__.py" in files
    assert len(files) >= 10


def test_scanner_sees_forbidden_imports() -> None:
    """The scan below would catch each spelling of a forbidden import."""
    samples = [
        ("import quanzhan.sim.market", "quanzhan.engine.decision", False),
        ("from quanzhan.sim import market", "quanzhan.engine.decision", False),
        ("from quanzhan import sim", "quanzhan.engine.decision", False),
        ("from ..sim.market import Market", "quanzhan.engine.decision", False),
        ("from ..cli import main", "quanzhan.bidding", True),
        ("import quanzhan.report.html as h", "quanzhan.accounting.ledger", False),
    ]
    for source, module, is_package in samples:
        names = _imported_names(ast.parse(source), module, is_package)
        assert any(_forbidden(n) for n in names), source
    clean = _imported_names(
        ast.parse("from quanzhan.engine import simulate\nimport quanzhan.simple"),
        "quanzhan.engine.x",
        False,
    )
    assert not any(_forbidden(n) for n in clean)


@pytest.mark.parametrize("path", _module_files(), ids=lambda p: _module_name(p))
def test_no_module_imports_the_simulator(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = _imported_names(tree, _module_name(path), path.name == "__init__.py")
    offending = sorted({n for n in names if _forbidden(n)})
    assert not offending, f"{path.relative_to(PACKAGE_ROOT)} imports {offending}"


_PROBE = """
import importlib, json, pkgutil, sys
imported = []
for name in ("quanzhan.engine", "quanzhan.bidding", "quanzhan.accounting"):
    package = importlib.import_module(name)
    imported.append(name)
    for info in pkgutil.walk_packages(package.__path__, prefix=name + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
loaded = sorted(m for m in sys.modules if m.startswith("quanzhan"))
print(json.dumps({"imported": imported, "loaded": loaded}))
"""


def test_importing_every_module_loads_no_simulator() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {_module_name(p) for p in _module_files()}
    assert expected <= set(report["imported"])
    offending = [m for m in report["loaded"] if _forbidden(m)]
    assert not offending, f"importing the engine loaded {offending}"
