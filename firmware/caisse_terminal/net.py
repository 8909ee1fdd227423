"""The sync transport over plain sockets (HTTP/1.0), for the device and for CPython, and the
Wi-Fi station it runs on.

transport(method, path, headers, body) -> (status, body); raises OSError when the network is
down or TLS cannot be set up, so the sync client backs off and retries. https:// uses the
port's ssl.SSLContext (MicroPython >= 1.23, CPython); with a CA (ca_pem) the server must
present a certificate it signed, and nothing is ever sent over an unverified connection.

transport.open(...) -> (status, Response) gives the body as a stream instead (readinto, close):
the sync reads its answers so, never holding one whole. A request body may also be an object
with `length` and `write_to(write)`: it is written as it is made (the sync's upload batches).
The socket is used through write and readinto, which MicroPython's sockets and TLS sockets have
(its TLS socket has no send/recv), or send and recv_into under CPython.

With `idle` set (the terminal's pump), waiting for the answer is cut into IDLE_SLICE_S socket
timeouts with idle() between them, so the keypad is scanned while the server thinks and the
answer arrives. DNS, connect and the TLS handshake still block: the terminal starts a sync only
when nobody is typing (terminal.py).
"""

import socket

try:
    from collections.abc import Callable  # noqa: F401  (annotations only; MicroPython has no collections.abc)
except ImportError:
    pass

IDLE_SLICE_S = 0.01  # the keypad's scan period
_TIMEOUT_ERRNOS = (11, 110, 116)  # EAGAIN, ETIMEDOUT (Linux), ETIMEDOUT (lwIP)
try:
    _TIMEOUT_TYPES = (TimeoutError,)  # CPython's socket.timeout
except NameError:  # MicroPython: an OSError carrying one of the errnos above
    _TIMEOUT_TYPES = ()


def _timed_out(error) -> bool:
    return isinstance(error, _TIMEOUT_TYPES) or (bool(error.args) and error.args[0] in _TIMEOUT_ERRNOS)


class HttpTransport:
    def __init__(self, base_url: str, timeout_s: float = 10, *, ca_pem: "str | None" = None,
                 link=None) -> None:
        """ca_pem: the pinned CA (PEM text), https only. link: anything with up() -> bool
        (Wifi below): asked before each request, it may start joining the network."""
        scheme, _, rest = base_url.partition("://")
        hostport, _, prefix = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.tls = scheme == "https"
        self.host = host
        self.port = int(port) if port else (443 if self.tls else 80)
        self.prefix = "/" + prefix.rstrip("/") if prefix else ""
        self.timeout_s = timeout_s
        if ca_pem is not None and not self.tls:
            raise ValueError("a CA is pinned for https only")
        self.ca_pem = ca_pem
        self.link = link
        self.idle: Callable[[], None] | None = None  # while waiting for the answer (module docstring)
        self._context = None  # the ssl.SSLContext, made at the first https request

    def __call__(self, method: str, path: str, headers: dict, body) -> tuple:
        status, response = self.open(method, path, headers, body)
        try:
            return status, response.read_all()
        finally:
            response.close()

    def open(self, method: str, path: str, headers: dict, body) -> tuple:
        """Send the request; (status, Response) once the answer's head has arrived."""
        if self.link is not None and not self.link.up():
            raise OSError("network not connected")
        context = self._tls_context() if self.tls else None
        addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout_s)
            sock.connect(addr)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=self.host)
            lines = ["%s %s%s HTTP/1.0" % (method, self.prefix, path), "Host: " + self.host]
            for k in headers:
                lines.append("%s: %s" % (k, headers[k]))
            streamed = hasattr(body, "write_to")
            lines.append("Content-Length: %d" % (body.length if streamed else len(body) if body else 0))
            write = getattr(sock, "write", None) or sock.send
            _send(write, ("\r\n".join(lines) + "\r\n\r\n").encode())
            if streamed:
                body.write_to(lambda data: _send(write, data))
            elif body:
                _send(write, body)
            response = Response(sock, self.idle, self.timeout_s)
        except BaseException:
            sock.close()
            raise
        return response.status, response

    def _tls_context(self):
        """The SSLContext for every https request; OSError rather than an unverified one."""
        if self._context is not None:
            return self._context
        try:
            ssl = _ssl()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.ca_pem is not None:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(cadata=self.ca_pem)
                verified = context.verify_mode == ssl.CERT_REQUIRED
            else:
                load_default = getattr(context, "load_default_certs", None)
                if load_default is not None:
                    load_default()  # CPython: the system's CAs; MicroPython: no verification
                verified = True
        except OSError:
            raise
        except Exception as e:  # ImportError, AttributeError, ValueError of a port without it
            raise OSError("TLS setup failed: %r" % (e,)) from e
        if not verified:
            raise OSError("TLS: this port does not verify the pinned CA, refusing to connect")
        self._context = context
        return context

class Response:
    """The answer to one request: its status, then its body read as it arrives (HTTP/1.0: up to
    the server's close)."""

    HEAD_MAX = 1024

    def __init__(self, sock, idle=None, timeout_s: float = 10) -> None:
        self._sock = sock
        self._idle = idle
        self._timeout_s = timeout_s
        self._into = getattr(sock, "readinto", None) or getattr(sock, "recv_into", None) or self._recv_into
        if idle is not None:
            sock.settimeout(IDLE_SLICE_S)
        head = bytearray(self.HEAD_MAX)
        n = 0
        end = -1
        while end < 0:
            if n == len(head):
                raise OSError("HTTP answer head too long")
            got = self._wait_into(memoryview(head)[n:])
            if not got:
                raise OSError("connection closed before the answer")
            n += got
            end = head.find(b"\r\n\r\n")
        status_line = bytes(head[:head.find(b"\r\n")])
        try:
            self.status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise OSError("not an HTTP answer") from None
        self._early = memoryview(head)[end + 4:n]  # body bytes that came with the head

    def readinto(self, buf) -> int:
        early = self._early
        if early:
            n = min(len(buf), len(early))
            buf[:n] = early[:n]
            self._early = early[n:]
            return n
        return self._wait_into(buf)

    def _wait_into(self, buf) -> int:
        """Some bytes into buf (0 at the end); with idle, waited for in IDLE_SLICE_S slices with
        idle() between them, and after each read."""
        waited_s = 0.0
        while True:
            try:
                n = self._into(buf)
            except OSError as e:
                if self._idle is None or not _timed_out(e):
                    raise
                n = None  # nothing yet
            if n is not None or self._idle is None:
                if self._idle is not None:
                    self._idle()
                return n or 0
            waited_s += IDLE_SLICE_S
            if waited_s >= self._timeout_s:
                raise OSError(110)  # ETIMEDOUT
            self._idle()

    def _recv_into(self, buf) -> int:
        """For a socket with recv alone (test stand-ins)."""
        data = self._sock.recv(len(buf))
        buf[:len(data)] = data
        return len(data)

    def read_all(self) -> bytes:
        """The whole body (small answers: uploads, errors)."""
        body = bytearray()
        buf = bytearray(512)
        while True:
            n = self.readinto(buf)
            if not n:
                return bytes(body)
            body += memoryview(buf)[:n]

    def close(self) -> None:
        self._sock.close()


def _send(write, data) -> None:
    n = write(data)  # a blocking socket takes it all: no view to make
    if n == len(data):
        return
    view = memoryview(data)
    while True:
        if not n:
            raise OSError("connection closed while sending")
        view = view[n:]
        if not view:
            return
        n = write(view)


def _ssl():
    import ssl
    return ssl


class Wifi:
    """The ESP32 station, never waited for: up() starts joining and returns at once.

    The sync task asks it before each request (HttpTransport's link); payments go on offline
    meanwhile. wlan and stat_connecting replace network.WLAN(STA_IF) and network.STAT_CONNECTING
    in tests.
    """

    def __init__(self, ssid: str, password: str, *, wlan=None, stat_connecting=None) -> None:
        if wlan is None:
            import network  # the device only
            wlan = network.WLAN(network.STA_IF)
            stat_connecting = network.STAT_CONNECTING
        self._wlan = wlan
        self._connecting = stat_connecting
        self._ssid = ssid
        self._password = password
        self.attempts = 0

    def up(self) -> bool:
        wlan = self._wlan
        if wlan.isconnected():
            return True
        if not wlan.active():
            wlan.active(True)
        if wlan.status() != self._connecting:
            # Idle, or the last attempt failed (no AP, wrong password...): try again. The ESP32
            # raises while it is already connecting, which the status check avoids.
            self.attempts += 1
            try:
                wlan.connect(self._ssid, self._password)
            except OSError:
                pass  # the next up() tries again
        return False
