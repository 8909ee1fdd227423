"""The command line on the simulated board: provision, re-run dry, decommission."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from caisse_provisioning.cli import app


def env_for(backend, tmp_path) -> dict[str, str]:
    return {"CAISSE_ADMIN_TOKEN": backend.token, "CAISSE_PROVISIONING_CONFIG": str(tmp_path / "none.toml"),
            "COLUMNS": "200"}


def test_provision_then_decommission_from_the_command_line(board, backend, vendor_id, tmp_path):
    runner = CliRunner()
    env = env_for(backend, tmp_path)
    done = runner.invoke(app, ["provision", "--vendor", str(vendor_id), "--port", board.port,
                                        "--backend-url", backend.url, "--wifi-ssid", "Marche"],
                         input="motdepasse\n", env=env)
    assert done.exit_code == 0, done.output
    assert "OK    Lecteur NFC : PN532 version 1.6" in done.output  # the real hardware self-test ran
    assert "À copier dans le ticket" in done.output and "Terminal          : n°1" in done.output
    assert json.loads((board.flash_dir / "data" / "provision.json").read_text())["wifi"]["password"] == "motdepasse"

    dry = runner.invoke(app, ["provision", "--vendor", str(vendor_id), "--port", board.port,
                                       "--backend-url", backend.url, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "0 fichier(s) à copier" in dry.output and "simulation" in dry.output

    gone = runner.invoke(app, ["decommission", "--port", board.port, "--backend-url", backend.url], env=env)
    assert gone.exit_code == 0, gone.output
    assert "Terminal n°1 révoqué" in gone.output
    with backend.admin() as client:
        assert client.get("/v1/admin/terminals/1").json()["status"] == "revoked"
    assert not (board.flash_dir / "data" / "config.json").exists()
    assert not (board.flash_dir / "data" / "key.bin").exists()


def test_a_failure_prints_what_to_check_in_french_and_exits_1(backend, tmp_path):
    result = CliRunner().invoke(app, ["provision", "--vendor", "1", "--port", str(tmp_path / "ttyUSB9"),
                                               "--backend-url", backend.url], env=env_for(backend, tmp_path))
    assert result.exit_code == 1
    assert "Échec" in result.output and "À vérifier" in result.output


def test_yes_keeps_a_working_key_without_asking(board, backend, vendor_id, tmp_path):
    runner = CliRunner()
    env = env_for(backend, tmp_path)
    args = ["provision", "--vendor", str(vendor_id), "--port", board.port, "--backend-url", backend.url,
            "--skip-hardware-test"]
    assert runner.invoke(app, args, env=env).exit_code == 0
    key = (board.flash_dir / "data" / "key.bin").read_bytes()
    again = runner.invoke(app, args + ["--yes"], env=env)
    assert again.exit_code == 0, again.output
    assert "conservée" in again.output and (board.flash_dir / "data" / "key.bin").read_bytes() == key


def test_a_lost_terminal_is_revoked_by_number_without_a_board(backend, vendor_id, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    from caisse_common.protocol import public_key_bytes

    with backend.admin() as client:
        key = public_key_bytes(ec.generate_private_key(ec.SECP256R1()))
        terminal = client.post("/v1/admin/terminals", json={"vendor_id": vendor_id, "public_key": key.hex()}).json()
    result = CliRunner().invoke(app, ["decommission", "--terminal-id", str(terminal["id"]),
                                               "--backend-url", backend.url], env=env_for(backend, tmp_path))
    assert result.exit_code == 0, result.output
    assert f"Terminal n°{terminal['id']} révoqué" in result.output
    with backend.admin() as client:
        assert client.get(f"/v1/admin/terminals/{terminal['id']}").json()["status"] == "revoked"


def test_provisioning_is_the_technicians_own_command_in_french(capsys):
    from caisse_common.cli_french import exit_code

    assert exit_code(app, args=["--help"], prog_name="caisse-technicien") == 0
    shown = capsys.readouterr().out
    assert "Utilisation : caisse-technicien" in shown and "provision" in shown and "decommission" in shown
    assert exit_code(app, args=["provision"], prog_name="caisse-technicien") == 2
    assert "--vendor" in capsys.readouterr().err


def test_the_caisse_command_leaves_terminals_on_the_bench_to_the_technician():
    from caisse.cli.main import app as caisse_app

    result = CliRunner().invoke(caisse_app, ["terminal", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "provision" not in result.output and "decommission" not in result.output
