"""HttpTransport and Wifi against fake socket, ssl and WLAN modules (no network)."""

import types

import pytest

from caisse_terminal import net

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
ANSWER = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}"


class FakeSocket:
    """A CPython socket: send and recv_into (a few bytes at a time, as a network gives them)."""

    def __init__(self, log):
        self.log = log
        self.sent = b""
        self.answer = ANSWER
        self.piece = 7

    def settimeout(self, s):
        pass

    def connect(self, addr):
        self.log.append(("connect", addr))

    def send(self, data):
        self.sent += bytes(data)
        return len(data)

    def recv_into(self, buf):
        n = min(len(buf), self.piece)
        data, self.answer = self.answer[:n], self.answer[n:]
        buf[:len(data)] = data
        return len(data)

    def close(self):
        self.log.append(("close",))


class FakeTlsSocket:
    """MicroPython's SSLSocket: a stream with read, readinto and write, and no send or recv."""

    def __init__(self, sock):
        self._sock = sock

    def write(self, data):
        return self._sock.send(data)

    def readinto(self, buf):
        return self._sock.recv_into(buf)

    def read(self, n):
        buf = bytearray(n)
        return bytes(buf[:self.readinto(buf)])

    def close(self):
        self._sock.close()


class FakeSocketModule:
    AF_INET, SOCK_STREAM = 2, 1

    def __init__(self):
        self.log = []
        self.sockets = []
        self.answer = ANSWER  # what the next socket receives ...
        self.piece = 7  # ... at most this many bytes at a time

    def getaddrinfo(self, host, port, family, kind):
        return [(2, 1, 0, "", (host, port))]

    def socket(self, family, kind):
        sock = FakeSocket(self.log)
        sock.answer, sock.piece = self.answer, self.piece
        self.sockets.append(sock)
        return sock


def fake_ssl(*, honours_verify_mode=True, loads=True):
    """An ssl module whose SSLContext may ignore verify_mode (or fail to load the CA)."""
    mod = types.SimpleNamespace(PROTOCOL_TLS_CLIENT=16, CERT_NONE=0, CERT_REQUIRED=2, contexts=[])

    class SSLContext:
        def __init__(self, protocol):
            assert protocol == mod.PROTOCOL_TLS_CLIENT
            self._verify_mode = mod.CERT_NONE
            self.cadata = None
            self.wrapped = []
            mod.contexts.append(self)

        @property
        def verify_mode(self):
            return self._verify_mode

        @verify_mode.setter
        def verify_mode(self, value):
            if honours_verify_mode:
                self._verify_mode = value

        def load_verify_locations(self, cafile=None, cadata=None):
            if not loads:
                raise ValueError("invalid cert")
            self.cadata = cadata

        def wrap_socket(self, sock, server_hostname=None):
            self.wrapped.append(server_hostname)
            return FakeTlsSocket(sock)

    mod.SSLContext = SSLContext
    return mod


@pytest.fixture
def sockets(monkeypatch):
    fake = FakeSocketModule()
    monkeypatch.setattr(net, "socket", fake)
    return fake


def test_https_with_a_pinned_ca_verifies_the_server_against_it(sockets, monkeypatch):
    ssl = fake_ssl()
    monkeypatch.setattr(net, "_ssl", lambda: ssl)
    transport = net.HttpTransport("https://caisse.example.org/api", ca_pem=PEM)
    assert transport("GET", "/v1/x", {}, None) == (200, b"{}")
    (context,) = ssl.contexts
    assert (context.verify_mode, context.cadata, context.wrapped) == (ssl.CERT_REQUIRED, PEM, ["caisse.example.org"])
    assert sockets.sockets[0].sent.startswith(b"GET /api/v1/x HTTP/1.0\r\nHost: caisse.example.org\r\n")
    assert ("connect", ("caisse.example.org", 443)) in sockets.log


def test_an_answer_is_read_as_a_stream_as_it_arrives(sockets):
    body = bytes(range(256)) * 40
    sockets.answer = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    sockets.piece = 1000
    status, response = net.HttpTransport("http://10.0.0.2:8000").open("GET", "/v1/terminals/7/sync?since=0", {}, None)
    assert status == 200
    got = bytearray()
    buf = bytearray(300)
    while True:
        n = response.readinto(buf)
        if not n:
            break
        got += buf[:n]
    response.close()
    assert bytes(got) == body and ("close",) in sockets.log


def test_a_head_that_never_ends_is_an_oserror_and_the_socket_is_closed(sockets):
    sockets.answer = b"HTTP/1.0 200 OK\r\n" + b"X-Padding: y\r\n" * 200
    with pytest.raises(OSError):
        net.HttpTransport("http://10.0.0.2:8000")("GET", "/v1/x", {}, None)
    assert ("close",) in sockets.log


@pytest.mark.parametrize("ssl", [fake_ssl(honours_verify_mode=False), fake_ssl(loads=False),
                                 types.SimpleNamespace(PROTOCOL_TLS_CLIENT=16, CERT_REQUIRED=2)],
                         ids=["verify_mode ignored", "CA refused", "no SSLContext"])
def test_https_with_a_pinned_ca_refuses_to_talk_without_verification(sockets, monkeypatch, ssl):
    monkeypatch.setattr(net, "_ssl", lambda: ssl)
    transport = net.HttpTransport("https://caisse.example.org", ca_pem=PEM)
    with pytest.raises(OSError):  # an OSError: the sync client backs off instead of crashing
        transport("POST", "/v1/terminals/7/batches", {}, b"records")
    assert sockets.sockets == [] and sockets.log == []  # nothing connected, nothing sent


def test_a_ca_is_refused_for_plain_http():
    with pytest.raises(ValueError):
        net.HttpTransport("http://caisse.example.org", ca_pem=PEM)


class FakeWlan:
    CONNECTING, IDLE, NO_AP = 1001, 1000, 201

    def __init__(self):
        self.is_active = False
        self.connected = False
        self.state = self.IDLE
        self.connects = []

    def active(self, on=None):
        if on is None:
            return self.is_active
        self.is_active = on

    def isconnected(self):
        return self.connected

    def status(self):
        return self.state

    def connect(self, ssid, password):
        assert self.is_active and self.state != self.CONNECTING, "the ESP32 raises here"
        self.connects.append((ssid, password))
        self.state = self.CONNECTING


def test_wifi_joins_without_waiting_and_retries_after_a_failure():
    wlan = FakeWlan()
    wifi = net.Wifi("Marche", "motdepasse", wlan=wlan, stat_connecting=FakeWlan.CONNECTING)
    assert wifi.up() is False and wlan.connects == [("Marche", "motdepasse")]
    assert wifi.up() is False and len(wlan.connects) == 1  # still connecting: not asked again
    wlan.state = FakeWlan.NO_AP
    assert wifi.up() is False and len(wlan.connects) == 2  # the attempt failed: try again
    wlan.connected = True
    assert wifi.up() is True and len(wlan.connects) == 2


def test_the_transport_asks_the_link_first_and_fails_fast_while_it_is_down(sockets):
    wlan = FakeWlan()
    wifi = net.Wifi("Marche", "motdepasse", wlan=wlan, stat_connecting=FakeWlan.CONNECTING)
    transport = net.HttpTransport("http://10.0.0.2:8000", link=wifi)
    with pytest.raises(OSError):
        transport("GET", "/v1/x", {}, None)
    assert sockets.sockets == [] and wlan.connects  # no socket; joining has started
    wlan.connected = True
    assert transport("GET", "/v1/x", {}, None) == (200, b"{}")
