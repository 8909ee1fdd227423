"""The systemd units of deploy/systemd: systemd-analyze accepts them, and each ExecStart runs with
its EnvironmentFile against PostgreSQL (CI), paths rewritten to a temporary tree."""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.database import scratch_postgres_database

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
CAISSE = str(Path(sys.executable).with_name("caisse"))


def _install(tree: Path, *, port: int = 8000) -> Path:
    """The units and env file as they would be installed, every path moved under `tree`."""
    units = tree / "units"
    units.mkdir(parents=True)
    user = getpass.getuser()
    for unit in UNITS.glob("caisse-*"):
        content = (unit.read_text(encoding="utf-8").replace("/opt/caisse/.venv/bin/caisse", CAISSE)
                   .replace("/etc/caisse/env", str(tree / "env")).replace("/var/lib/caisse", str(tree / "lib"))
                   .replace("/var/backups/caisse", str(tree / "backups")).replace("--port 8000", f"--port {port}")
                   .replace("User=caisse", f"User={user}").replace("Group=caisse", f"Group={user}"))
        (units / unit.name).write_text(content, encoding="utf-8")
    (tree / "lib").mkdir()
    (tree / "backups").mkdir()
    return units


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing: `make test` installs Debian's systemd package")
    units = _install(tmp_path)
    (tmp_path / "env").write_text((UNITS / "env.example").read_text(encoding="utf-8"), encoding="utf-8")
    names = sorted(str(path) for path in units.iterdir())
    assert len(names) == 5
    checked = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True,
                             cwd=units, check=False)
    complaints = [line for line in (checked.stdout + checked.stderr).splitlines() if "caisse-" in line]
    assert checked.returncode == 0 and complaints == [], checked.stderr


def _exec_lines(unit: Path) -> list[list[str]]:
    return [shlex.split(line.split("=", 1)[1]) for line in unit.read_text(encoding="utf-8").splitlines()
            if re.match(r"^ExecStart(Pre)?=", line)]


def _environment(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#"))
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CAISSE_")}, **dict(pairs)}


@pytest.fixture
def production_database() -> Iterator[str]:
    if not os.environ.get("CI"):
        pytest.skip("runs the units against PostgreSQL: set CI=true (server at 127.0.0.1:5432)")
    with scratch_postgres_database("caisse_units") as url:
        yield url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_each_exec_start_runs_with_its_environment_file(tmp_path: Path, production_database: str) -> None:
    port = _free_port()
    units = _install(tmp_path, port=port)
    env_text = (UNITS / "env.example").read_text(encoding="utf-8")
    for name, value in {"CAISSE_DATABASE_URL": production_database, "CAISSE_ADMIN_TOKEN": "un-secret-de-test-assez-long",
                        "CAISSE_DEBTOR_IBAN": "FR1420041010050500013M02606", "CAISSE_DEBTOR_BIC": "PSSTFRPPXXX",
                        "CAISSE_SETTLEMENT_DIR": str(tmp_path / "lib" / "reglements"),
                        "CAISSE_CARD_MASTER_KEY_HEX": "11" * 16, "CAISSE_CARD_META_KEY_HEX": "22" * 16,
                        "CAISSE_MEMBER_CODE_MASTER_KEY_HEX": "33" * 32}.items():
        env_text = re.sub(rf"^{name}=.*$", f"{name}={value}", env_text, flags=re.MULTILINE)
    (tmp_path / "env").write_text(env_text, encoding="utf-8")
    env = _environment(tmp_path / "env")
    assert env["CAISSE_ENVIRONMENT"] == "production"

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, cwd=tmp_path / "lib", capture_output=True, text=True, timeout=120, check=False)

    upgrade, serve = _exec_lines(units / "caisse-api.service")
    assert run(upgrade).returncode == 0
    server = subprocess.Popen(serve, env=env, cwd=tmp_path / "lib", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        answer = None
        for _ in range(200):  # polls the real server until it answers (or 20 s)
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
    [backup] = _exec_lines(units / "caisse-backup.service")
    saved = run(backup)
    assert saved.returncode == 0, saved.stderr
    assert Path(saved.stdout.strip()).parent == tmp_path / "backups" and Path(saved.stdout.strip()).is_file()
    settle, departures, erasure, verify = _exec_lines(units / "caisse-nightly.service")
    settled = run(settle)
    assert settled.returncode == 0, settled.stderr
    departed = run(departures)
    assert departed.returncode == 0 and "Cartes bloquées : 0 foyer(s)" in departed.stderr, departed.stderr
    erased = run(erasure)
    assert erased.returncode == 0 and "Données effacées : 0 foyer(s)" in erased.stderr, erased.stderr
    checked = run(verify)
    assert checked.returncode == 0, checked.stderr
