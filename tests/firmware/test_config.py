"""Provisioning files to terminal settings (caisse_terminal.config), under CPython and MicroPython."""

import json

from tests.firmware.mpy_runtime import run

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUX0\n-----END CERTIFICATE-----\n"
PROVISION = {"backend_url": "https://caisse.example.org", "wifi": {"ssid": "Marche-Jaures", "password": "motdepasse"},
             "ca_file": "ca.pem", "vendor_id": 12, "provisioned_at": 1767254400, "tool_version": "1"}

# Each case: the files in /data, then what load() answers. One script, run by both interpreters.
CASES = {
    "provisioned": {"provision.json": json.dumps(PROVISION), "ca.pem": PEM, "config.json": '{"terminal_id": 17}'},
    "no_wifi_no_ca": {"provision.json": json.dumps({**PROVISION, "backend_url": "http://10.0.0.2:8000",
                                                    "wifi": None, "ca_file": None}),
                      "config.json": '{"terminal_id": 3, "limits": {}}'},
    "nothing": {},
    "not_json": {"provision.json": "{backend", "config.json": '{"terminal_id": 17}'},
    "bad_url": {"provision.json": json.dumps({**PROVISION, "backend_url": "caisse.example.org"}), "ca.pem": PEM,
                "config.json": '{"terminal_id": 17}'},
    "ca_missing": {"provision.json": json.dumps(PROVISION), "config.json": '{"terminal_id": 17}'},
    "ca_not_pem": {"provision.json": json.dumps(PROVISION), "ca.pem": "hello", "config.json": '{"terminal_id": 17}'},
    "ca_over_http": {"provision.json": json.dumps({**PROVISION, "backend_url": "http://caisse.example.org"}),
                     "ca.pem": PEM, "config.json": '{"terminal_id": 17}'},
    "wifi_without_ssid": {"provision.json": json.dumps({**PROVISION, "wifi": {"password": "x"}}), "ca.pem": PEM,
                          "config.json": '{"terminal_id": 17}'},
    "no_terminal_id": {"provision.json": json.dumps(PROVISION), "ca.pem": PEM, "config.json": '{"limits": {}}'},
    "no_config": {"provision.json": json.dumps(PROVISION), "ca.pem": PEM},
}

SCRIPT = """
import json
from caisse_terminal import config, sim
from caisse_terminal.hal import LINE_CHARS

def answer(files):
    storage = sim.MemoryStorage({name: text.encode() for name, text in files.items()})
    try:
        s = config.load(storage)
    except config.ConfigError as e:
        assert all(len(line) <= LINE_CHARS for line in e.lines)
        return {"error": list(e.lines)}
    return {"url": s.backend_url, "id": s.terminal_id, "ssid": s.wifi_ssid, "password": s.wifi_password,
            "ca": s.ca_pem}

print(json.dumps({name: answer(files) for name, files in json.loads(CASES).items()}))
"""

EXPECTED = {
    "provisioned": {"url": "https://caisse.example.org", "id": 17, "ssid": "Marche-Jaures", "password": "motdepasse",
                    "ca": PEM},
    "no_wifi_no_ca": {"url": "http://10.0.0.2:8000", "id": 3, "ssid": None, "password": "", "ca": None},
    "nothing": {"error": ["Terminal non", "configuré", "Réglages réseau", "absent"]},
    "not_json": {"error": ["Terminal non", "configuré", "Réglages réseau", "illisible"]},
    "bad_url": {"error": ["Terminal non", "configuré", "Adresse serveur", "invalide"]},
    "ca_missing": {"error": ["Terminal non", "configuré", "Certificat", "absent"]},
    "ca_not_pem": {"error": ["Terminal non", "configuré", "Certificat", "invalide"]},
    "ca_over_http": {"error": ["Terminal non", "configuré", "Certificat sans", "https"]},
    "wifi_without_ssid": {"error": ["Terminal non", "configuré", "Wi-Fi invalide"]},
    "no_terminal_id": {"error": ["Terminal non", "configuré", "Numéro terminal", "absent"]},
    "no_config": {"error": ["Terminal non", "configuré", "Numéro terminal", "absent"]},
}


def _script() -> str:
    return "CASES = " + repr(json.dumps(CASES)) + "\n" + SCRIPT


def test_provisioning_files_load_under_cpython(capsys):
    exec(_script(), {})
    assert json.loads(capsys.readouterr().out) == EXPECTED


def test_provisioning_files_load_under_micropython():
    assert json.loads(run(_script())) == EXPECTED


def test_what_provisioning_writes_is_what_the_terminal_loads():
    # The names and keys of provisioning's device scripts, not a copy of them.
    from caisse_provisioning import device_scripts
    from caisse_terminal import config, sim
    assert (device_scripts.PROVISION_FILE, device_scripts.DATA_DIR) == (config.PROVISION_FILE, "/data")
    storage = sim.MemoryStorage({"config.json": b'{"terminal_id": 5}'})
    storage.replace(device_scripts.PROVISION_FILE, json.dumps({**PROVISION, "ca_file": device_scripts.CA_FILE}).encode())
    storage.replace(device_scripts.CA_FILE, PEM.encode())
    assert config.load(storage).ca_pem == PEM



SIGNER_SCRIPT = """
from caisse_terminal import config, sim
from caisse_terminal.soft_signer import SoftwareSigner

class SecureElement:
    pass

SECRET = bytes(range(1, 33))

def pick(files, se):
    try:
        signer, inline = config.load_signer(sim.MemoryStorage(files), se)
    except config.ConfigError as e:
        return "error:" + "/".join(e.lines[2:])
    kind = "se" if isinstance(signer, SecureElement) else type(signer).__name__
    return kind + ":" + ("inline" if inline is signer else "after-beep" if inline is None else "?")

se = SecureElement()
print(pick({"key.se": b"1"}, se))
print(pick({"key.se": b"1"}, None))
print(pick({"key.bin": SECRET}, se))
print(pick({"key.bin": SECRET}, None))
print(pick({}, se))
print(pick({"key.bin": b"short"}, None))
print(SoftwareSigner(SECRET).public_key() == config.load_signer(sim.MemoryStorage({"key.bin": SECRET}), None)[0].public_key())
"""

SIGNER_EXPECTED = [
    "se:inline",
    "error:Puce sécurité/absente",
    "SoftwareSigner:after-beep",
    "SoftwareSigner:after-beep",
    "error:Clé absente",
    "error:Clé absente",
    "True",
]


def test_the_signer_is_the_key_provisioning_registered_under_cpython(capsys):
    exec(SIGNER_SCRIPT, {})
    assert capsys.readouterr().out.split("\n")[:-1] == SIGNER_EXPECTED


def test_the_signer_is_the_key_provisioning_registered_under_micropython():
    assert run(SIGNER_SCRIPT).split("\n")[:-1] == SIGNER_EXPECTED
