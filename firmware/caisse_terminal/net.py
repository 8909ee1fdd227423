"""The sync transport over plain sockets (HTTP/1.0), for the device and for CPython.

transport(method, path, headers, body) -> (status, body); raises OSError when the network is
down. https:// uses the port's ssl module (MicroPython: ssl.wrap_socket / SSLContext).
"""

import socket


class HttpTransport:
    def __init__(self, base_url: str, timeout_s: float = 10) -> None:
        scheme, _, rest = base_url.partition("://")
        hostport, _, prefix = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.tls = scheme == "https"
        self.host = host
        self.port = int(port) if port else (443 if self.tls else 80)
        self.prefix = "/" + prefix.rstrip("/") if prefix else ""
        self.timeout_s = timeout_s

    def __call__(self, method: str, path: str, headers: dict, body) -> tuple:
        addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout_s)
            sock.connect(addr)
            if self.tls:
                import ssl
                sock = ssl.wrap_socket(sock, server_hostname=self.host)  # type: ignore
            lines = ["%s %s%s HTTP/1.0" % (method, self.prefix, path), "Host: " + self.host]
            for k in headers:
                lines.append("%s: %s" % (k, headers[k]))
            lines.append("Content-Length: %d" % (len(body) if body else 0))
            head = ("\r\n".join(lines) + "\r\n\r\n").encode()
            _send(sock, head)
            if body:
                _send(sock, body)
            chunks = []
            while True:
                data = sock.recv(1024)
                if not data:
                    break
                chunks.append(data)
        finally:
            sock.close()
        raw = b"".join(chunks)
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, payload


def _send(sock, data) -> None:
    view = memoryview(data)
    while view:
        n = sock.send(view)
        view = view[n:]


def wifi_up(ssid: str, password: str, timeout_ms: int = 15000) -> bool:
    """Join the Wi-Fi (device only); True when connected. Sync retries later otherwise."""
    import time

    import network  # type: ignore
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if not sta.isconnected():
        sta.connect(ssid, password)
        start = time.ticks_ms()  # type: ignore
        while not sta.isconnected() and time.ticks_diff(time.ticks_ms(), start) < timeout_ms:  # type: ignore
            time.sleep_ms(100)  # type: ignore
    return sta.isconnected()
