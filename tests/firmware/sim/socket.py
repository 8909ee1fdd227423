"""socket, for caisse_terminal.net under the WebAssembly port (which has none): one fake
server behind every address, answering after `latency_ms` of the loop's virtual time.

A recv() with a timeout shorter than the wait passes that much virtual time and raises
OSError(ETIMEDOUT), as lwIP does; without a timeout it passes the whole wait. `server` is a
callable(method, path, headers, body) -> (status, body bytes); `down` makes connect() fail.
"""

AF_INET = 2
SOCK_STREAM = 1
_ETIMEDOUT = 110

server = None
loop = None
latency_ms = 300
down = False
connections = 0


def getaddrinfo(host, port, *args):
    return [(AF_INET, SOCK_STREAM, 0, "", (host, port))]


class socket:
    def __init__(self, *args):
        self._out = b""
        self._answer = None
        self._ready_ms = 0
        self._timeout = None

    def settimeout(self, seconds):
        self._timeout = seconds

    def connect(self, addr):
        global connections
        if down:
            raise OSError(113)  # EHOSTUNREACH
        connections += 1

    def send(self, data):
        self._out += bytes(data)
        return len(data)

    def _request(self):
        head, _, body = self._out.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(": ")
            headers[k] = v
        status, answer = server(method, path, headers, body)
        self._answer = b"HTTP/1.0 %d X\r\nContent-Type: application/json\r\n\r\n" % status + answer
        self._ready_ms = loop.clock.ms + latency_ms

    def recv(self, n):
        if self._answer is None:
            self._request()
        wait = self._ready_ms - loop.clock.ms
        if wait > 0:
            if self._timeout is not None and self._timeout * 1000 < wait:
                loop.advance(int(self._timeout * 1000))
                raise OSError(_ETIMEDOUT)
            loop.advance(wait)
        chunk = self._answer[:n]
        self._answer = self._answer[n:]
        return chunk

    def close(self):
        pass
