"""P-256 ECDSA signing in pure Python, for MicroPython boards without a secure element.

Only what a terminal needs: the public key of a secret and deterministic signatures (RFC 6979,
HMAC-SHA256), so a record re-signed after a reboot is the same bytes. No verification here: the
backend verifies.

Speed: the only scalar multiplication is by the fixed generator G, so it uses a comb
(Lim-Lee) with _TEETH teeth: a table of 2^_TEETH - 1 affine points built once, then 43
doublings and at most 43 mixed additions in Jacobian coordinates per multiplication. The table
is kept packed, 64 bytes a point (4 KB with 6 teeth; as tuples of ints it took 15 KB of heap),
and a point is turned back into two ints when an addition uses it (docs/performance.md, "P-256
comb": teeth against heap and signing time). Inversions use the binary-free extended Euclid on MicroPython's big ints.
Not constant time: acceptable for a market-stall terminal whose threat is a forged record, not
a lab side-channel attack; boards that need more use the ATECC608 (firmware/drivers/).
"""

import hashlib

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython: the simulator and the host tests
    def const(x):
        return x

_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
_N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
_B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
_GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
_GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
_TEETH = const(6)
_SPACING = const(43)  # ceil(256 / _TEETH): the comb's column count

_table = None  # bytes 64 j .. 64 j + 64: x || y of point j (affine), j in 1..2^_TEETH-1; built on first use


def _inverse(a: int, m: int) -> int:
    """a^-1 mod m by the extended Euclidean algorithm (m prime, 0 < a < m)."""
    lo, hi = 1, 0
    low, high = a % m, m
    while low > 1:
        q = high // low
        lo, hi = hi - lo * q, lo
        low, high = high - low * q, low
    return lo % m


def _double(x: int, y: int, z: int):
    """2P in Jacobian coordinates, a = -3 (dbl-2001-b)."""
    if z == 0 or y == 0:
        return 0, 1, 0
    p = _P
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y + z) * (y + z) - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return x3, y3, z3


def _add_affine(x1: int, y1: int, z1: int, x2: int, y2: int):
    """P + Q with P Jacobian and Q affine (mixed addition)."""
    if z1 == 0:
        return x2, y2, 1
    p = _P
    z1z1 = z1 * z1 % p
    h = (x2 * z1z1 - x1) % p
    r = (y2 * z1 * z1z1 - y1) % p
    if h == 0:
        if r == 0:
            return _double(x1, y1, z1)
        return 0, 1, 0
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - y1 * hhh) % p
    return x3, y3, z1 * h % p


def _to_affine(x: int, y: int, z: int):
    zi = _inverse(z, _P)
    zi2 = zi * zi % _P
    return x * zi2 % _P, y * zi2 * zi % _P


def _build_table(idle=None):
    # Base points G_i = 2^(i * _SPACING) G, then every sum of a subset of them. idle() runs
    # between pieces of work: the first signature after a boot builds it (4-5 s on an ESP32).
    bases = []
    x, y, z = _GX, _GY, 1
    for i in range(_TEETH):
        if i:
            for _ in range(_SPACING):
                x, y, z = _double(x, y, z)
                if idle is not None:
                    idle()
        bases.append(_to_affine(x, y, z))
    table = bytearray(64 << _TEETH)
    view = memoryview(table)
    for j in range(1, 1 << _TEETH):
        low = j & -j
        i = 0
        while (1 << i) != low:
            i += 1
        if j == low:
            x, y = bases[i]
        else:
            k = 64 * (j ^ low)
            px, py = int.from_bytes(view[k:k + 32], "big"), int.from_bytes(view[k + 32:k + 64], "big")
            x, y = _to_affine(*_add_affine(px, py, 1, bases[i][0], bases[i][1]))
        view[64 * j:64 * j + 32] = x.to_bytes(32, "big")
        view[64 * j + 32:64 * j + 64] = y.to_bytes(32, "big")
        if idle is not None:
            idle()
    return table


def _mul_g(k: int, idle=None):
    """k * G as affine (x, y), 0 < k < n; idle() is called after each column and before the
    inversion (each about 5-10 ms on an ESP32)."""
    global _table
    if _table is None:
        _table = _build_table(idle)
    table = memoryview(_table)
    # Column c of the comb gathers bits c, c + 43, c + 86, ... of k.
    words = [(k >> (i * _SPACING)) & ((1 << _SPACING) - 1) for i in range(_TEETH)]
    x, y, z = 0, 1, 0
    for col in range(_SPACING - 1, -1, -1):
        x, y, z = _double(x, y, z)
        idx = 0
        for i in range(_TEETH):
            idx |= ((words[i] >> col) & 1) << i
        if idx:
            k = 64 * idx
            x, y, z = _add_affine(x, y, z, int.from_bytes(table[k:k + 32], "big"),
                                  int.from_bytes(table[k + 32:k + 64], "big"))
        if idle is not None:
            idle()
    return _to_affine(x, y, z)


def _scalar(secret: bytes) -> int:
    if len(secret) != 32:
        raise ValueError("a P-256 secret is 32 bytes")
    d = int.from_bytes(secret, "big")
    if not 0 < d < _N:
        raise ValueError("secret out of range")
    return d


def public_key(secret: bytes) -> bytes:
    """The 65-byte uncompressed public point 0x04 || X || Y of a 32-byte secret."""
    x, y = _mul_g(_scalar(secret))
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _hmac(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (the ESP32 port has no hmac module; the key is at most 64 bytes here)."""
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def sign_digest(secret: bytes, digest: bytes, idle=None) -> bytes:
    """64-byte r || s over a 32-byte digest, with the RFC 6979 nonce (HMAC-SHA256).

    idle: called now and then during the computation (the terminal scans its keypad there), so
    the 200-400 ms of a signature on an ESP32 never hide a key press."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    d = _scalar(secret)
    e = int.from_bytes(digest, "big")
    x_octets = secret
    h_octets = (e % _N).to_bytes(32, "big")
    v = b"\x01" * 32
    k_mac = bytes(32)
    k_mac = _hmac(k_mac, v + b"\x00" + x_octets + h_octets)
    v = _hmac(k_mac, v)
    k_mac = _hmac(k_mac, v + b"\x01" + x_octets + h_octets)
    v = _hmac(k_mac, v)
    while True:
        v = _hmac(k_mac, v)
        k = int.from_bytes(v, "big")
        if 0 < k < _N:
            r = _mul_g(k, idle)[0] % _N
            if idle is not None:
                idle()  # between the two inversions
            if r:
                s = _inverse(k, _N) * (e + r * d) % _N
                if s:
                    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        k_mac = _hmac(k_mac, v + b"\x00")
        v = _hmac(k_mac, v)
