"""The import contracts of pyproject.toml ([tool.importlinter], run by `make test`) catch each
boundary crossing: a copy of the source tree with one forbidden import per contract breaks all of
them, so a contract that matches nothing (a renamed package, a typo) cannot pass silently."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"caisse": "backend", "caisse_provisioning": "provisioning", "caisse_common": "common",
                "caisse_terminal": "firmware", "drivers": "firmware"}

# (module file, the import it gains): one crossing per contract, in the contracts' order.
CROSSINGS = [
    ("backend/caisse/cli/main.py", "import caisse_provisioning.provision"),
    ("provisioning/caisse_provisioning/backend.py", "from caisse import audit"),
    ("common/caisse_common/sun.py", "import caisse.errors"),
    ("firmware/drivers/keypad.py", "from caisse_common import protocol"),
    ("backend/caisse/settlement/sepa.py", "from caisse.settlement import runs"),
    ("backend/caisse/members/households.py", "from caisse.cards import service"),
    ("backend/caisse/fund/costs.py", "from caisse.console import charts"),
    ("backend/caisse/demo/seed.py", "from caisse.cli import choices"),
    ("backend/caisse/ledger/postings.py", "from caisse.reports import directory"),
]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(sorted({str(tree / folder) for folder in PACKAGE_DIRS.values()}))
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml"),
                           "--no-cache"], cwd=tree, env={**os.environ, "PYTHONPATH": path},
                          capture_output=True, text=True, check=False)


def test_each_contract_breaks_on_a_forbidden_import(tmp_path: Path) -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) == len(CROSSINGS)
    for package, folder in PACKAGE_DIRS.items():
        shutil.copytree(ROOT / folder / package, tmp_path / folder / package,
                        ignore=shutil.ignore_patterns("__pycache__", "templates", "static"))
    assert _lint_imports(tmp_path).returncode == 0  # the copy alone keeps every contract

    for file, line in CROSSINGS:
        with (tmp_path / file).open("a") as module:
            module.write(f"\n{line}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Contracts: 0 kept, {len(CROSSINGS)} broken." in result.stdout, result.stdout
    for contract in contracts:
        assert contract["name"] in result.stdout.replace("\n", "")



def test_no_import_circle_between_modules() -> None:
    """No circle at all between the backend's modules, the imports inside functions included (a
    lazy import does not make a circle go away): the acyclic contract leaves out the few imports
    it names, and looks at packages rather than modules."""
    graph = grimp.build_graph("caisse", cache_dir=None)
    circles = {tuple(chain) for importer in sorted(graph.modules) for imported in sorted(graph.find_modules_directly_imported_by(importer))
               if imported.startswith("caisse") and (chain := graph.find_shortest_chain(importer=imported, imported=importer))}
    assert sorted(circles) == []


def test_no_module_imports_another_ones_private_name() -> None:
    """A name starting with `_` stays in its module: other modules reach a concept through its services."""
    found = []
    for path in sorted((ROOT / "backend" / "caisse").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("caisse"):
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert found == []
