"""What provisioning leaves in /data, checked before the terminal starts.

provisioning/caisse_provisioning/device_scripts.py writes, through hal.Storage:
    provision.json  {"backend_url", "wifi": {"ssid", "password"} | null, "ca_file": name | null, ...}
    ca.pem          the CA certificate pinned for an https backend (the name in "ca_file")
    config.json     terminal_id and limits (read by policy.Policy)

load(storage) returns a Settings or raises ConfigError, whose `lines` are the French text for
the screen: a terminal that is not fully provisioned says so instead of taking payments it
could never upload.
"""

import json

from .hal import LINE_CHARS
from .policy import CONFIG_FILE

PROVISION_FILE = "provision.json"
PEM_HEADER = b"-----BEGIN CERTIFICATE-----"
MAX_CA_BYTES = 8192  # a CA chain of a few certificates; more is not a provisioning file


class ConfigError(Exception):
    """The provisioning files are missing or unusable; `lines` says why, for the screen."""

    def __init__(self, *detail: str) -> None:
        self.lines = ("Terminal non", "configuré") + detail
        for line in self.lines:
            assert len(line) <= LINE_CHARS, line
        super().__init__(" ".join(self.lines))


class Settings:
    def __init__(self, *, backend_url: str, terminal_id: int, wifi_ssid: "str | None" = None,
                 wifi_password: str = "", ca_pem: "str | None" = None) -> None:
        self.backend_url = backend_url
        self.terminal_id = terminal_id
        self.wifi_ssid = wifi_ssid
        self.wifi_password = wifi_password
        self.ca_pem = ca_pem  # PEM text: both CPython's and MicroPython's ssl take it as str


def _json(storage, name: str, what: str) -> dict:
    raw = storage.read(name)
    if raw is None:
        raise ConfigError(what, "absent")
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(what, "illisible")
    return value


def load(storage) -> Settings:
    provision = _json(storage, PROVISION_FILE, "Réglages réseau")
    url = provision.get("backend_url")
    if not isinstance(url, str) or not (url.startswith("http://") or url.startswith("https://")) \
            or len(url.split("://", 1)[1].split("/", 1)[0]) == 0:
        raise ConfigError("Adresse serveur", "invalide")
    ca_pem = None
    ca_file = provision.get("ca_file")
    if ca_file is not None:
        if not url.startswith("https://"):
            raise ConfigError("Certificat sans", "https")  # pinning over plain http pins nothing
        raw = storage.read(ca_file) if isinstance(ca_file, str) else None
        if raw is None:
            raise ConfigError("Certificat", "absent")
        if len(raw) > MAX_CA_BYTES or PEM_HEADER not in raw:
            raise ConfigError("Certificat", "invalide")
        ca_pem = raw.decode()
    ssid, password = None, ""
    wifi = provision.get("wifi")
    if wifi is not None:
        if not isinstance(wifi, dict) or not isinstance(wifi.get("ssid"), str) or not wifi["ssid"] \
                or not isinstance(wifi.get("password") or "", str):
            raise ConfigError("Wi-Fi invalide")
        ssid, password = wifi["ssid"], wifi.get("password") or ""
    terminal_id = _json(storage, CONFIG_FILE, "Numéro terminal").get("terminal_id")
    if not isinstance(terminal_id, int) or terminal_id <= 0:
        raise ConfigError("Numéro terminal", "absent")
    return Settings(backend_url=url, terminal_id=terminal_id, wifi_ssid=ssid,
                    wifi_password=password, ca_pem=ca_pem)


SECURE_ELEMENT_MARKER = "key.se"
CODE_KEY_MARKER = "code.se"


def load_signer(storage, secure_element):
    """The key provisioning registered, and the signer to use on the tap path (or None).

    `key.se` says the ATECC608 holds it (it signs in about 50 ms: inline, before the beep);
    otherwise it is the software key in key.bin, signed after the beep. A secure element that
    answers on a board provisioned with a software key is not used: the backend knows the
    other key. Never creates a key: only provisioning does, so the backend knows it.
    """
    from .soft_signer import KEY_FILE, SoftwareSigner

    if storage.read(SECURE_ELEMENT_MARKER) is not None:
        if secure_element is None:
            raise ConfigError("Puce sécurité", "absente")
        return secure_element, secure_element
    secret = storage.read(KEY_FILE)
    if secret is None or len(secret) != 32:
        raise ConfigError("Clé absente")
    return SoftwareSigner(secret), None


def load_code_mac(storage, secure_element):
    """The ATECC608's HMAC with this terminal's member-code key, when provisioning put the key
    there (`code.se`); None otherwise: the terminal then checks codes the way its registration
    tells the backend (docs/protocol.md, "Member-code verifiers")."""
    if secure_element is None or storage.read(CODE_KEY_MARKER) is None:
        return None
    return secure_element.code_mac
