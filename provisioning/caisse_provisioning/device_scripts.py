"""Code run on the terminal through the raw REPL, one script per step.

Each script prints one line: ANSWER_MARK followed by JSON. They use only what the firmware
ships (caisse_terminal.storage, caisse_terminal.soft_signer, drivers.atecc608, board, selftest),
so they run after the firmware is copied. The private key is made and used on the device: no
script ever prints it.

Device layout, under /data (the firmware's FileStorage root):
    config.json     terminal_id and limits (read and rewritten by caisse_terminal.policy)
    provision.json  backend URL, Wi-Fi, CA file name, who provisioned it and when
    ca.pem          the CA certificate the terminal pins for the backend
    key.bin         the software key (boards without a secure element)
    key.se          marker: the ATECC608 key slot holds the key made at provisioning
    code.se         marker: the ATECC608 holds this terminal's member-code key
    clock.bin       the last known time (caisse_terminal.clock), set to the computer's here
"""

from __future__ import annotations

import json

from . import atecc
from .device import ANSWER_MARK

DATA_DIR = "/data"
PROVISION_FILE = "provision.json"
CA_FILE = "ca.pem"
PROVISION_DOMAIN = b"caisse-provision-v1"  # what the self-test signs: never a record digest
CODE_KEY_MARKER = "code.se"

_PRELUDE = f"""
import json, os
from caisse_terminal.storage import FileStorage
_st = FileStorage({DATA_DIR!r})
def _answer(x):
    print({ANSWER_MARK!r} + json.dumps(x))
def _hex(b):
    return ''.join('%02x' % c for c in b)
def _se():
    try:
        import board
        from machine import I2C, Pin
        from drivers.atecc608 import ATECC608
        i2c = I2C(board.I2C_ID, scl=Pin(board.I2C_SCL), sda=Pin(board.I2C_SDA), freq=board.I2C_FREQ_HZ)
        return ATECC608(i2c, board.ADDR_ATECC608)
    except Exception:
        return None  # no secure element on this board: the key is made in software
def _signer():
    se = _se()
    if se is not None and _st.read('key.se') is not None:
        return se, 'atecc608'
    if _st.read('key.bin') is None:
        return None, None
    from caisse_terminal.soft_signer import SoftwareSigner
    return SoftwareSigner.load_or_create(_st), 'logiciel'
"""


def state() -> str:
    """What the board holds now: config, network settings, key (public part) if any, and the
    secure element's configuration zone and locks (None without a chip)."""
    return _PRELUDE + """
def _json(name):
    raw = _st.read(name)
    return json.loads(raw) if raw else None
_chip = _se()
_zone = None
if _chip is not None:
    _c, _d = _chip.locks()
    _zone = {'config': _hex(_chip.read_config()), 'config_locked': _c, 'data_locked': _d}
_s, _kind = _signer()
_answer({'config': _json('config.json'), 'provision': _json('provision.json'), 'secure_element': _zone,
         'key_kind': _kind, 'public_key': _hex(_s.public_key()) if _s else None})
"""


def configure_secure_element(wanted: bytes) -> str:
    """Write the configuration zone of a factory-fresh ATECC608 word by word (only the words that
    differ), read it back, and lock it with its CRC: the chip refuses the lock unless it holds
    exactly `wanted` (atecc.wanted_config). Answers {'ok', 'written'}."""
    return _PRELUDE + f"""
from drivers.atecc608 import crc16
_chip = _se()
_want = {wanted!r}
_now = _chip.read_config()
_written = 0
for _w in {list(atecc.WRITABLE_WORDS)!r}:
    if _now[4 * _w:4 * _w + 4] != _want[4 * _w:4 * _w + 4]:
        _chip.write_config_word(_w, _want[4 * _w:4 * _w + 4])
        _written += 1
_ok = _chip.read_config() == _want
if _ok:
    _chip.lock_config(crc16(_want))
_answer({{'ok': _ok, 'written': _written}})
"""


def install_code_key(key: bytes) -> str:
    """Put this terminal's member-code key in the ATECC608's slot and lock the data zone if it is
    not yet; skip the write when the chip already answers with that key. The key is checked by
    an HMAC of a probe, compared with the computer's; it is never printed. Answers {'ok', 'written'}."""
    return _PRELUDE + f"""
from drivers.atecc608 import ATECCError, CODE_KEY_SLOT
_chip = _se()
_expected = {atecc.code_key_check(key)!r}
def _holds_key():
    try:
        return _chip.hmac(CODE_KEY_SLOT, {atecc.CODE_KEY_PROBE!r}) == _expected
    except ATECCError:
        return False  # the data zone is not locked yet
_written = False
_config_locked, _data_locked = _chip.locks()
if not (_data_locked and _holds_key()):
    _chip.write_slot(CODE_KEY_SLOT, {key!r})
    _written = True
    if not _data_locked:
        _chip.lock_data()
_ok = _holds_key()
if _ok:
    _st.replace({CODE_KEY_MARKER!r}, b'1')
    _st.sync()
_answer({{'ok': _ok, 'written': _written}})
"""


def make_key(*, rotate: bool) -> str:
    """Keep the key the board has, or make one (a new one if rotate): GenKey in the ATECC608
    where present, else 32 bytes of os.urandom kept in /data/key.bin. An ATECC608 whose zones
    config zone is not locked (configure_secure_element first) cannot make a key: the answer
    then has no public_key."""
    return _PRELUDE + f"""
_rotate = {rotate!r}
_created = False
_se_chip = _se()
if _se_chip is not None and not _se_chip.locks()[0]:
    _pub, _kind = None, 'atecc608'  # the chip refuses GenKey before its config is locked
elif _se_chip is not None:
    if _rotate or _st.read('key.se') is None:
        _pub = _se_chip.genkey()
        _st.replace('key.se', b'1')
        _st.sync()
        _created = True
    else:
        _pub = _se_chip.public_key()
    _kind = 'atecc608'
else:
    from caisse_terminal.soft_signer import SoftwareSigner, KEY_FILE
    if _rotate and _st.read(KEY_FILE) is not None:
        _st.remove(KEY_FILE)
    _created = _st.read(KEY_FILE) is None
    _pub = SoftwareSigner.load_or_create(_st).public_key()
    _kind = 'logiciel'
_answer({{'public_key': _hex(_pub) if _pub else None, 'kind': _kind, 'created': _created}})
"""


def sign_challenge(challenge: bytes) -> str:
    """The board signs SHA-256(PROVISION_DOMAIN || challenge) with its key."""
    return _PRELUDE + f"""
import hashlib
_s, _kind = _signer()
_d = hashlib.sha256({PROVISION_DOMAIN!r} + {challenge!r}).digest()
_answer({{'signature': _hex(_s.sign_digest(_d)) if _s else None}})
"""


def write_config(*, terminal_id: int, limits: dict[str, int], provision: dict[str, object],
                 ca_pem: str | None, unix_time_s: int | None) -> str:
    """Write the terminal id and limits (keeping the sync state when the id is unchanged), the
    network settings, the CA certificate; set the RTC and the last known time (clock.bin), so
    that a terminal whose power is cut before its first sync does not start in 2000."""
    return _PRELUDE + f"""
_old = _st.read('config.json')
_cfg = json.loads(_old) if _old else {{}}
if _cfg.get('terminal_id') != {terminal_id!r}:
    _cfg = {{}}  # a new identity starts its card table and sync state afresh
_cfg['terminal_id'] = {terminal_id!r}
_cfg['limits'] = json.loads({json.dumps(limits)!r})
_st.replace('config.json', json.dumps(_cfg).encode())
_st.replace({PROVISION_FILE!r}, {json.dumps(provision).encode()!r})
_ca = {ca_pem.encode() if ca_pem else None!r}
if _ca:
    _st.replace({CA_FILE!r}, _ca)
elif _st.read({CA_FILE!r}) is not None:
    _st.remove({CA_FILE!r})
_st.sync()
_t = {unix_time_s!r}
if _t is not None:
    import machine, time
    _g = time.gmtime(_t - (946684800 if time.gmtime(0)[0] == 2000 else 0))
    machine.RTC().datetime((_g[0], _g[1], _g[2], _g[6], _g[3], _g[4], _g[5], 0))
    _st.replace('clock.bin', _t.to_bytes(4, 'big'))
    _st.sync()
_answer({{'terminal_id': _cfg['terminal_id'], 'time': int(time.time()) if _t is not None else None}})
"""


def wipe() -> str:
    """Forget the identity: config, network settings, CA, software key, secure-element markers.
    The payment log stays: records not yet uploaded are still the caisse's money."""
    return _PRELUDE + f"""
_gone = []
for _n in ('config.json', {PROVISION_FILE!r}, {CA_FILE!r}, 'key.bin', 'key.se', {CODE_KEY_MARKER!r}, 'cards.bin'):
    if _st.read(_n) is not None:
        _st.remove(_n)
        _gone.append(_n)
_st.sync()
_answer({{'removed': _gone}})
"""


def selftest() -> str:
    """firmware/selftest.py on the board's own buses; every line it printed comes back."""
    return f"""
import json
try:
    import io, sys, selftest
    _ok = selftest.main()
    _err = None
except Exception as e:
    _ok = False
    _err = '%s: %s' % (e.__class__.__name__, e)
print({ANSWER_MARK!r} + json.dumps({{'passed': bool(_ok), 'error': _err}}))
"""


def frozen_firmware() -> str:
    """Whether the running MicroPython image has the firmware frozen in (image/manifest.py):
    `caisse_terminal` importable from the image alone. Its version, if so."""
    return f"""
import sys, json
_answer = {{'frozen': False, 'version': None}}
_saved = sys.path[:]
if '.frozen' in sys.path:
    sys.path[:] = ['.frozen']
    sys.modules.pop('caisse_terminal', None)
    try:
        import caisse_terminal
        _answer = {{'frozen': True, 'version': caisse_terminal.VERSION}}
    except ImportError:
        pass
    sys.modules.pop('caisse_terminal', None)
    sys.path[:] = _saved
print({ANSWER_MARK!r} + json.dumps(_answer))
"""


def file_hashes(paths: list[str]) -> str:
    """SHA-256 of each path, or None where the file does not exist."""
    return f"""
import hashlib, json
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b if n == 512 else b[:n])
    f.close()
    return ''.join('%02x' % c for c in h.digest())
print({ANSWER_MARK!r} + json.dumps({{p: _h(p) for p in json.loads({json.dumps(paths)!r})}}))
"""


def make_dirs(dirs: list[str]) -> str:
    return f"""
import os, json
for _d in json.loads({json.dumps(dirs)!r}):
    try:
        os.mkdir(_d)
    except OSError:
        pass  # exists
print({ANSWER_MARK!r} + '[]')
"""
