"""Provision and decommission a terminal: the steps of docs/provisioning.md, as a library.

Everything outside is passed in: the admin API client, how to find and open the board, the
esptool flasher, the firmware files, the clock and random source, and the hooks that show
progress and ask the technician. The command line (cli.py) only builds these and prints.

Order, so that a failure never leaves a half-registered terminal at the backend: check the
backend and the vendor, find the board, flash, copy the firmware, prepare a factory-fresh
ATECC608 (write and lock its configuration zone), make the key on the device, register (last but
one), then put the member-code key into the ATECC608 and lock its data zone, write the config,
set the clock and self-test. If a step after the registration fails, the registration of this
run is revoked and the device identity wiped (a lock, once made, stays: re-running is safe).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caisse_common.protocol import load_public_key, verify_digest

from . import atecc, bundle, device_scripts, flasher
from .backend import AdminClient, Settings
from .device import LONG_STEP_TIMEOUT_S, Board
from .errors import KeyAlreadyRegistered, KeyRotationRefused, ProvisioningError, SecureElementNotReady, SelfTestFailed

TOOL_VERSION = "1"


@dataclass
class Options:
    vendor_id: int
    port: str | None = None
    firmware_image: Path | None = None
    wifi_ssid: str | None = None
    wifi_password: str | None = None
    ca_cert: Path | None = None
    limits: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    hardware_selftest: bool = True
    rotate_key: bool | None = None  # a working key: True/False decided, None asks the technician


@dataclass
class Hooks:
    """How the library talks to the technician; the defaults are silent and refuse rotations."""

    step: Callable[[str], None] = lambda title: None
    step_done: Callable[[str, str], None] = lambda title, detail: None
    file_copied: Callable[[str, int, int], None] = lambda path, done, total: None
    confirm: Callable[[str], bool] = lambda question: False


@dataclass
class Summary:
    port: str = ""
    vendor_id: int = 0
    vendor_name: str = ""
    backend_url: str = ""
    terminal_id: int | None = None
    public_key: str = ""
    key_kind: str = ""
    key_status: str = ""
    secure_element: str = ""  # what was done to the ATECC608, for the ticket
    member_codes: str = ""
    chip: str | None = None
    files_total: int = 0
    files_copied: int = 0
    frozen_image: bool = False  # the firmware is in the MicroPython image, not copied
    wifi_ssid: str | None = None
    clock: str = ""
    selftest: list[str] = field(default_factory=list)
    revoked_terminal_id: int | None = None
    dry_run: bool = False

    def as_text(self) -> str:
        """What the technician pastes into the ticket."""
        fingerprint = hashlib.sha256(bytes.fromhex(self.public_key)).hexdigest()[:16] if self.public_key else "-"
        lines = [
            "Caisse — mise en service d'un terminal" + (" (simulation, rien n'a été modifié)" if self.dry_run else ""),
            f"  Date (UTC)        : {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}",
            f"  Port              : {self.port}",
            f"  Commerçant        : n°{self.vendor_id} {self.vendor_name}".rstrip(),
            f"  Serveur           : {self.backend_url}",
            f"  Terminal          : n°{self.terminal_id}" if self.terminal_id else "  Terminal          : non enregistré",
            f"  Clé               : {self.key_kind or '-'}, {self.key_status or '-'} (empreinte {fingerprint})",
        ]
        if self.secure_element:
            lines.append(f"  Élément sécurisé  : {self.secure_element}")
        if self.member_codes:
            lines.append(f"  Codes membres     : {self.member_codes}")
        if self.chip:
            lines.append(f"  Flashage          : {self.chip}")
        lines.append("  Micrologiciel     : dans l'image MicroPython (figé)" if self.frozen_image else
                     f"  Micrologiciel     : {self.files_copied} fichier(s) copié(s) sur {self.files_total}")
        lines.append(f"  Wi-Fi             : {self.wifi_ssid or 'non configuré'}")
        if self.clock:
            lines.append(f"  Horloge réglée    : {self.clock}")
        if self.revoked_terminal_id:
            lines.append(f"  Ancien terminal   : n°{self.revoked_terminal_id} révoqué")
        lines += [f"  Auto-test         : {line}" for line in self.selftest]
        return "\n".join(lines)


def provision(options: Options, *, settings: Settings, admin: AdminClient, find_port: Callable[[str | None], str],
              open_board: Callable[[str], Board], hooks: Hooks | None = None,
              firmware: Callable[[], list[bundle.DeviceFile]] = bundle.build,
              flash: Callable[..., str] = flasher.flash, now: Callable[[], float] = time.time,
              urandom: Callable[[int], bytes] = os.urandom) -> Summary:
    hooks = hooks or Hooks()
    summary = Summary(vendor_id=options.vendor_id, backend_url=settings.backend_url, dry_run=options.dry_run,
                      wifi_ssid=options.wifi_ssid)

    hooks.step("Serveur et commerçant")
    vendor = admin.vendor(options.vendor_id)
    summary.vendor_name = str(vendor.get("name", ""))
    hooks.step_done("Serveur et commerçant", f"commerçant n°{options.vendor_id} {summary.vendor_name}")

    hooks.step("Recherche du terminal")
    summary.port = find_port(options.port)
    hooks.step_done("Recherche du terminal", summary.port)

    if options.firmware_image is not None and not options.dry_run:
        hooks.step("Flashage de MicroPython")
        summary.chip = flash(summary.port, options.firmware_image)
        hooks.step_done("Flashage de MicroPython", summary.chip)

    hooks.step("Préparation du micrologiciel")
    files = firmware()
    summary.files_total = len(files)
    board = open_board(summary.port)
    try:
        board.start()
        frozen = bundle.frozen_image(board)
        changed, stale = bundle.plan(board, files, frozen=frozen)
        if frozen:  # the image holds the firmware: copies on the filesystem would hide it
            summary.frozen_image, summary.files_total = True, 0
            files = []
        hooks.step_done("Préparation du micrologiciel",
                        f"image figée : {len(stale)} ancien(s) fichier(s) à retirer" if frozen else
                        f"{len(changed)} fichier(s) à copier sur {len(files)}")
        if options.dry_run:
            return summary
        hooks.step("Copie du micrologiciel")
        copied = 0

        def on_file(f: bundle.DeviceFile) -> None:
            nonlocal copied
            copied += 1
            summary.files_copied = copied
            hooks.file_copied(f.path, copied, len(changed))

        bundle.sync(board, files, changed, stale, on_file=on_file)
        hooks.step_done("Copie du micrologiciel", f"{len(changed)} copié(s), empreintes vérifiées")
        _identity(options, settings, admin, board, hooks, summary, now=now, urandom=urandom)
    finally:
        board.finish()
    return summary


def _identity(options: Options, settings: Settings, admin: AdminClient, board: Board, hooks: Hooks,
              summary: Summary, *, now: Callable[[], float], urandom: Callable[[int], bytes]) -> None:
    hooks.step("Clé du terminal")
    state = board.ask(device_scripts.state(), doing="la lecture de l'état du terminal", timeout_s=LONG_STEP_TIMEOUT_S)
    chip = state.get("secure_element")
    if chip is not None:
        summary.secure_element = _prepare_secure_element(board, chip)
    previous_id = (state.get("config") or {}).get("terminal_id") or None
    kept = None  # the backend record of a registration this run keeps as is
    rotate = False
    if state.get("public_key") and previous_id:
        record = admin.terminal(previous_id)
        why = _unusable(record, public_key=state["public_key"], vendor_id=options.vendor_id, chip=chip is not None)
        if why is None:
            rotate = options.rotate_key if options.rotate_key is not None else hooks.confirm(
                f"Ce terminal est déjà enregistré (terminal n°{previous_id}). "
                "Générer une nouvelle clé ? L'ancienne sera révoquée.")
            kept = None if rotate else record
        else:
            rotate = hooks.confirm(f"La clé de ce terminal (terminal n°{previous_id}) ne peut pas servir : {why}. "
                                   "Générer une nouvelle clé ?")
            if not rotate:
                raise KeyRotationRefused(f"Nouvelle clé refusée : le terminal n°{previous_id} reste tel quel.")
    key = _make_key(board, rotate=rotate)
    summary.public_key, summary.key_kind = key["public_key"], key["kind"]
    summary.key_status = "renouvelée" if rotate else "créée" if key["created"] else "conservée"
    hooks.step_done("Clé du terminal", f"{summary.key_kind}, {summary.key_status}")

    hooks.step("Enregistrement auprès du serveur")
    registered_now = None
    if kept is not None:
        terminal = kept
    else:
        try:
            terminal = admin.register(vendor_id=options.vendor_id, public_key=bytes.fromhex(summary.public_key),
                                      secure_element=chip is not None)
        except KeyAlreadyRegistered as error:
            if not hooks.confirm("Le serveur connaît déjà cette clé (enregistrement annulé ou autre terminal). "
                                 "Générer une nouvelle clé ?"):
                raise KeyRotationRefused("Nouvelle clé refusée : ce terminal n'a pas été enregistré.") from error
            key = _make_key(board, rotate=True)
            summary.public_key, summary.key_status = key["public_key"], "renouvelée"
            terminal = admin.register(vendor_id=options.vendor_id, public_key=bytes.fromhex(summary.public_key),
                                      secure_element=chip is not None)
        registered_now = int(terminal["id"])
    summary.terminal_id = int(terminal["id"])
    hooks.step_done("Enregistrement auprès du serveur", f"terminal n°{summary.terminal_id}"
                    + (" (déjà enregistré)" if registered_now is None else ""))

    try:
        if chip is not None:
            _install_code_key(admin, board, hooks, summary)
        else:
            summary.member_codes = "aucun (pas d'élément sécurisé : les paiements qui demandent un code sont refusés)"
        _configure_and_test(options, settings, admin, board, hooks, summary, now=now, urandom=urandom)
        if registered_now is not None and previous_id and previous_id != registered_now:
            old = admin.terminal(previous_id)
            if old is not None and old.get("status") == "active":
                admin.revoke(previous_id)
                summary.revoked_terminal_id = previous_id
    except BaseException as error:
        if registered_now is not None:
            _roll_back(admin, board, registered_now, error)
        raise


def _unusable(record: dict[str, Any] | None, *, public_key: str, vendor_id: int, chip: bool) -> str | None:
    """Why the registration the board remembers cannot be kept (French), or None if it can."""
    if record is not None and record.get("vendor_id") != vendor_id:
        return "il appartient à un autre commerçant"
    if record is None or record.get("status") != "active" or record.get("public_key") != public_key:
        return "son enregistrement a été révoqué ou n'existe plus"
    if record.get("secure_element") is None:
        return "il a été enregistré avant les clés des codes membres"
    if record.get("secure_element") != chip:
        return "il a été enregistré " + ("sans" if chip else "avec") + " élément sécurisé"
    return None


def _prepare_secure_element(board: Board, chip: dict[str, Any]) -> str:
    """A factory-fresh ATECC608 gets Caisse's configuration, locked; a chip locked with Caisse's
    configuration is kept as it is; one locked with another is refused before anything changes."""
    config = bytes.fromhex(chip["config"])
    if chip["config_locked"]:
        if not atecc.is_caisse_layout(config):
            raise SecureElementNotReady("L'élément sécurisé ATECC608 de ce terminal a été verrouillé avec une autre "
                                        "configuration : il ne peut pas garder les clés de la caisse. Rien n'a été "
                                        "enregistré.")
        return "ATECC608 déjà configuré pour la caisse"
    answer = board.ask(device_scripts.configure_secure_element(atecc.wanted_config(config)),
                       doing="la configuration de l'élément sécurisé", timeout_s=LONG_STEP_TIMEOUT_S)
    if not answer.get("ok"):
        raise SecureElementNotReady("L'élément sécurisé ATECC608 n'a pas gardé la configuration écrite : "
                                    "sa zone de configuration n'a pas été verrouillée. Rien n'a été enregistré.",
                                    "relancez la commande ; si cela se répète, mettez le terminal de côté et "
                                    "prévenez l'équipe technique.")
    return f"ATECC608 neuf configuré ({answer['written']} mot(s) écrit(s)) et zone de configuration verrouillée"


def _install_code_key(admin: AdminClient, board: Board, hooks: Hooks, summary: Summary) -> None:
    assert summary.terminal_id is not None
    hooks.step("Clé des codes membres")
    key = admin.member_code_key(summary.terminal_id)
    answer = board.ask(device_scripts.install_code_key(key), doing="l'écriture de la clé des codes membres",
                       timeout_s=LONG_STEP_TIMEOUT_S)
    if not answer.get("ok"):
        raise SecureElementNotReady("L'élément sécurisé ATECC608 ne donne pas le résultat attendu avec la clé des "
                                    "codes membres : l'enregistrement est annulé.",
                                    "relancez la commande ; si cela se répète, mettez le terminal de côté et "
                                    "prévenez l'équipe technique.")
    summary.member_codes = ("clé écrite dans l'ATECC608, zone de données verrouillée, vérifiée" if answer["written"]
                            else "clé déjà dans l'ATECC608, vérifiée")
    hooks.step_done("Clé des codes membres", summary.member_codes)


def _make_key(board: Board, *, rotate: bool) -> dict[str, Any]:
    key = board.ask(device_scripts.make_key(rotate=rotate), doing="la création de la clé", timeout_s=LONG_STEP_TIMEOUT_S)
    if not key.get("public_key"):
        raise SecureElementNotReady("La zone de configuration de l'élément sécurisé ATECC608 n'est pas verrouillée : "
                                    "il ne peut pas créer de clé de signature. Rien n'a été enregistré.")
    return key


def _configure_and_test(options: Options, settings: Settings, admin: AdminClient, board: Board, hooks: Hooks,
                        summary: Summary, *, now: Callable[[], float], urandom: Callable[[int], bytes]) -> None:
    assert summary.terminal_id is not None
    hooks.step("Configuration et horloge")
    ca_file = options.ca_cert or (Path(settings.ca_cert_file) if settings.ca_cert_file else None)
    provision_record = {
        "backend_url": settings.backend_url,
        "wifi": {"ssid": options.wifi_ssid, "password": options.wifi_password} if options.wifi_ssid else None,
        "ca_file": device_scripts.CA_FILE if ca_file else None,
        "vendor_id": options.vendor_id,
        "provisioned_at": int(now()),
        "tool_version": TOOL_VERSION,
    }
    written = board.ask(device_scripts.write_config(
        terminal_id=summary.terminal_id, limits=options.limits, provision=provision_record,
        ca_pem=ca_file.read_text() if ca_file else None, unix_time_s=int(now())),
        doing="l'écriture de la configuration")
    summary.clock = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(written["time"]))
    hooks.step_done("Configuration et horloge", f"terminal n°{written['terminal_id']}, horloge {summary.clock}")

    hooks.step("Auto-test")
    challenge = urandom(32)
    answer = board.ask(device_scripts.sign_challenge(challenge), doing="la signature du défi",
                       timeout_s=LONG_STEP_TIMEOUT_S)
    record = admin.terminal(summary.terminal_id)
    if record is None or not answer.get("signature"):
        raise SelfTestFailed("Le terminal n'a pas pu signer le défi.")
    digest = hashlib.sha256(device_scripts.PROVISION_DOMAIN + challenge).digest()
    if not verify_digest(load_public_key(bytes.fromhex(record["public_key"])), digest,
                         bytes.fromhex(answer["signature"])):
        raise SelfTestFailed("La signature du terminal ne correspond pas à la clé enregistrée sur le serveur.")
    summary.selftest = ["signature vérifiée avec la clé du serveur"]
    if options.hardware_selftest:
        out = board.run(device_scripts.selftest(), doing="l'auto-test du matériel", timeout_s=LONG_STEP_TIMEOUT_S)
        lines = [line.strip() for line in out.splitlines() if line.startswith(("OK", "ECHEC"))]
        summary.selftest += lines
        result = _answer(out)
        if not result.get("passed"):
            failed = [line for line in lines if line.startswith("ECHEC")] or [str(result.get("error"))]
            raise SelfTestFailed("Auto-test du matériel en échec :\n  " + "\n  ".join(failed))
    else:
        summary.selftest.append("matériel non testé (--skip-hardware-test)")
    hooks.step_done("Auto-test", "réussi")


def _answer(out: str) -> dict[str, Any]:
    import json

    for line in reversed(out.splitlines()):
        if line.startswith(device_scripts.ANSWER_MARK):
            return json.loads(line[len(device_scripts.ANSWER_MARK):])
    return {"passed": False, "error": "pas de réponse"}


def _roll_back(admin: AdminClient, board: Board, terminal_id: int, cause: BaseException) -> None:
    """Revoke what this run registered, and forget it on the device (best effort there)."""
    try:
        admin.revoke(terminal_id)
    except ProvisioningError as error:
        if isinstance(cause, ProvisioningError):
            cause.hint = (f"{cause.hint} ATTENTION : le terminal n°{terminal_id} n'a pas pu être révoqué "
                          f"({error.message}) ; révoquez-le depuis la console d'administration.")
    try:
        board.ask(device_scripts.wipe(), doing="l'effacement de la configuration")
    except ProvisioningError:
        pass  # the board is gone: the next run sees a key the backend refuses and makes a new one


def decommission(*, admin: AdminClient, find_port: Callable[[str | None], str], open_board: Callable[[str], Board],
                 port: str | None = None, terminal_id: int | None = None, hooks: Hooks | None = None) -> dict[str, Any]:
    """Revoke the terminal's key at the backend, then wipe the device configuration.

    Without a board (lost, broken), give terminal_id: only the revocation is done."""
    hooks = hooks or Hooks()
    board = None
    if terminal_id is None or port is not None:
        hooks.step("Recherche du terminal")
        found = find_port(port)
        board = open_board(found)
        hooks.step_done("Recherche du terminal", found)
    try:
        if board is not None:
            board.start()
            state = board.ask(device_scripts.state(), doing="la lecture de l'état du terminal",
                              timeout_s=LONG_STEP_TIMEOUT_S)
            on_device = (state.get("config") or {}).get("terminal_id")
            if terminal_id is not None and on_device not in (None, terminal_id):
                raise ProvisioningError(f"Ce terminal est le n°{on_device}, pas le n°{terminal_id}.",
                                        "le numéro donné avec --terminal-id.")
            terminal_id = terminal_id or on_device
        revoked = None
        if terminal_id:
            hooks.step("Révocation de la clé")
            revoked = admin.revoke(int(terminal_id))
            hooks.step_done("Révocation de la clé", f"terminal n°{terminal_id} révoqué")
        removed: list[str] = []
        if board is not None:
            hooks.step("Effacement de la configuration")
            removed = board.ask(device_scripts.wipe(), doing="l'effacement de la configuration")["removed"]
            hooks.step_done("Effacement de la configuration", ", ".join(removed) or "rien à effacer")
        return {"terminal_id": terminal_id, "revoked": revoked is not None, "removed": removed}
    finally:
        if board is not None:
            board.finish()
