"""`caisse-technicien`, the technician's command: `provision` and `decommission` a terminal over USB.

Only declares options and calls the library (provision.py). It talks to the backend through its
admin API (backend.py), never by importing it: the `caisse` command does not know this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.panel import Panel

from caisse_common import cli_french

from . import ports
from .backend import AdminClient, load_settings
from .device import Board, serial_transport
from .errors import ProvisioningError
from .provision import Hooks, Options, decommission, provision

app = cli_french.FrenchTyper(help="Outil du technicien : mise en service et retrait des terminaux de paiement (USB).",
                             no_args_is_help=True, prog_name="caisse-technicien")
console = Console()


def _hooks(yes: bool) -> Hooks:
    status = console.status("")

    def step(title: str) -> None:
        status.update(f"{title}…")
        status.start()

    def done(title: str, detail: str) -> None:
        status.stop()
        console.print(f"[green]✓[/green] {title} : {detail}")

    def copied(path: str, n: int, total: int) -> None:
        console.print(f"    {n}/{total} {path}", highlight=False)

    def confirm(question: str) -> bool:
        status.stop()
        if yes:
            console.print(f"{question} [oui, --yes]")
            return True
        return cli_french.confirm(question)

    return Hooks(step=step, step_done=done, file_copied=copied, confirm=confirm)


def _open_board(port: str) -> Board:
    return Board(serial_transport(port), port)


def _fail(error: ProvisioningError) -> NoReturn:
    console.print(Panel(str(error), title="Échec", border_style="red"))
    raise typer.Exit(1)


@app.command("provision")
def provision_command(
    vendor: Annotated[int, typer.Option("--vendor", help="Numéro du commerçant qui reçoit le terminal.")],
    port: Annotated[str | None, typer.Option(help="Port série, par ex. /dev/ttyUSB0 ou COM3.")] = None,
    firmware_image: Annotated[Path | None, typer.Option(help="Image MicroPython (.bin) à flasher d'abord.")] = None,
    wifi_ssid: Annotated[str | None, typer.Option(help="Nom du réseau Wi-Fi du terminal.")] = None,
    wifi_password: Annotated[str | None, typer.Option(help="Mot de passe Wi-Fi (sinon demandé).")] = None,
    backend_url: Annotated[str | None, typer.Option(help="Adresse du serveur de la caisse.")] = None,
    ca_cert: Annotated[Path | None, typer.Option(help="Certificat de l'autorité à épingler sur le terminal.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Tout vérifier, ne rien modifier.")] = False,
    skip_hardware_test: Annotated[bool, typer.Option("--skip-hardware-test",
                                                     help="Carte nue : ne pas tester lecteur, écran, clavier, buzzer.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Sans questions : garde une clé valide, en crée une quand il le faut.")] = False,
    new_key: Annotated[bool, typer.Option("--new-key", help="Remplacer la clé même si elle est valide.")] = False,
) -> None:
    """Met en service un terminal branché en USB : micrologiciel, clé, enregistrement, auto-test."""
    try:
        settings = load_settings(backend_url=backend_url)
        wifi_ssid = wifi_ssid or settings.wifi_ssid
        if wifi_ssid and not wifi_password:
            wifi_password = settings.wifi_password or typer.prompt(f"Mot de passe du Wi-Fi « {wifi_ssid} »", hide_input=True)
        admin = AdminClient.connect(settings)
        try:
            summary = provision(
                Options(vendor_id=vendor, port=port, firmware_image=firmware_image, wifi_ssid=wifi_ssid,
                        wifi_password=wifi_password, ca_cert=ca_cert, dry_run=dry_run,
                        hardware_selftest=not skip_hardware_test,
                        rotate_key=True if new_key else False if yes else None),
                settings=settings, admin=admin, find_port=lambda p: ports.find_port(p), open_board=_open_board,
                hooks=_hooks(yes))
        finally:
            admin.close()
    except ProvisioningError as error:
        _fail(error)
    console.print(Panel(summary.as_text(), title="À copier dans le ticket", border_style="green"), highlight=False)


@app.command("decommission")
def decommission_command(
    port: Annotated[str | None, typer.Option(help="Port série du terminal.")] = None,
    terminal_id: Annotated[int | None, typer.Option(help="Sans terminal branché : le numéro à révoquer.")] = None,
    backend_url: Annotated[str | None, typer.Option(help="Adresse du serveur de la caisse.")] = None,
) -> None:
    """Retire un terminal : révoque sa clé sur le serveur et efface sa configuration."""
    try:
        settings = load_settings(backend_url=backend_url)
        admin = AdminClient.connect(settings)
        try:
            result = decommission(admin=admin, find_port=lambda p: ports.find_port(p), open_board=_open_board,
                                  port=port, terminal_id=terminal_id, hooks=_hooks(False))
        finally:
            admin.close()
    except ProvisioningError as error:
        _fail(error)
    text = (f"Terminal n°{result['terminal_id']} révoqué" if result["revoked"] else "Aucun terminal enregistré")
    if result["removed"]:
        text += f" ; effacé du terminal : {', '.join(result['removed'])}"
    console.print(Panel(text, title="Retrait du terminal", border_style="green"), highlight=False)
