"""The backend's admin API, as provisioning uses it. The httpx client is passed in (tests may
hand one bound to any base URL); the token never comes from the command line by default."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .errors import AdminTokenMissing, BackendRefused, BackendUnreachable, KeyAlreadyRegistered, VendorUnknown

TOKEN_ENV = "CAISSE_ADMIN_TOKEN"
CONFIG_ENV = "CAISSE_PROVISIONING_CONFIG"
DEFAULT_CONFIG = Path.home() / ".config" / "caisse" / "provisioning.toml"
TIMEOUT_S = 15


@dataclass(frozen=True)
class Settings:
    """backend_url, admin_token, and optional defaults read from the config file."""

    backend_url: str
    admin_token: str
    ca_cert_file: str | None = None
    wifi_ssid: str | None = None
    wifi_password: str | None = None


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))


def load_settings(*, backend_url: str | None = None, environ: dict[str, str] | None = None,
                  path: Path | None = None) -> Settings:
    """Flags first, then the environment, then the config file (a TOML table [caisse])."""
    env = os.environ if environ is None else environ
    file = path or config_path()
    data: dict[str, Any] = {}
    if file.exists():
        data = tomllib.loads(file.read_text()).get("caisse", {})
    token = env.get(TOKEN_ENV) or data.get("admin_token")
    if not token:
        raise AdminTokenMissing(f"Aucun jeton d'administration : ni {TOKEN_ENV}, ni admin_token dans {file}.")
    url = backend_url or env.get("CAISSE_BACKEND_URL") or data.get("backend_url")
    if not url:
        raise BackendUnreachable("Adresse du serveur de la caisse inconnue.",
                                 f"donnez --backend-url, ou backend_url dans {file}.")
    return Settings(backend_url=url.rstrip("/"), admin_token=token, ca_cert_file=data.get("ca_cert_file"),
                    wifi_ssid=data.get("wifi_ssid"), wifi_password=data.get("wifi_password"))


class AdminClient:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    @classmethod
    def connect(cls, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> AdminClient:
        verify: Any = settings.ca_cert_file or True
        return cls(httpx.Client(base_url=settings.backend_url, timeout=TIMEOUT_S, transport=transport,
                                verify=verify, headers={"Authorization": f"Bearer {settings.admin_token}"}))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise BackendUnreachable(f"Le serveur de la caisse ({self.client.base_url}) ne répond pas.") from error

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return _answer(self._send(method, path, **kwargs))

    def vendor(self, vendor_id: int) -> dict[str, Any]:
        response = self._send("GET", f"/v1/admin/vendors/{vendor_id}")
        if response.status_code == 404:
            raise VendorUnknown(f"Le commerçant n°{vendor_id} n'existe pas sur le serveur.", status_code=404)
        return _answer(response)

    def terminal(self, terminal_id: int) -> dict[str, Any] | None:
        response = self._send("GET", f"/v1/admin/terminals/{terminal_id}")
        return None if response.status_code == 404 else _answer(response)

    def register(self, *, vendor_id: int, public_key: bytes, secure_element: bool) -> dict[str, Any]:
        response = self._send("POST", "/v1/admin/terminals", json={"vendor_id": vendor_id, "public_key": public_key.hex(),
                                                                   "secure_element": secure_element})
        if response.status_code == 409:
            raise KeyAlreadyRegistered(f"Le serveur connaît déjà cette clé ({_detail(response)}).", status_code=409)
        return _answer(response)

    def member_code_key(self, terminal_id: int) -> bytes:
        """The terminal's member-code key, to write into its ATECC608 (never printed, never stored)."""
        return bytes.fromhex(self._call("POST", f"/v1/admin/terminals/{terminal_id}/member-code-key")["key"])

    def revoke(self, terminal_id: int) -> dict[str, Any]:
        return self._call("POST", f"/v1/admin/terminals/{terminal_id}/revoke")

    def close(self) -> None:
        self.client.close()


def _answer(response: httpx.Response) -> Any:
    """The JSON body of a success; a refusal raises BackendRefused with the status code."""
    if response.status_code in (401, 403):
        raise BackendRefused("Le serveur refuse le jeton d'administration.", status_code=response.status_code)
    if response.status_code >= 400:
        raise BackendRefused(f"Le serveur a refusé la demande ({response.status_code} : {_detail(response)}).",
                             status_code=response.status_code)
    return response.json()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("detail") or body.get("error") or body)
    except ValueError:
        return response.text[:200]
