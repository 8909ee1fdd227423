"""The backend's terminal endpoints in memory, inside MicroPython: uploads stored by seq and
acknowledged, /sync answered with the clock, the health header kept. It trusts what it gets:
the test verifies every record afterwards with `cryptography` (CPython)."""

import binascii
import json


class Backend:
    def __init__(self, clock):
        self.clock = clock
        self.records = {}  # seq -> raw 154 bytes
        self.health = []  # (X-Caisse-Health, X-Caisse-Health-Signature, X-Caisse-Time)
        self.syncs = 0

    def acked(self):
        n = 0
        while n + 1 in self.records:
            n += 1
        return n

    def __call__(self, method, path, headers, body):
        if method == "POST" and path.endswith("/batches"):
            results = []
            for index, text in enumerate(json.loads(body)["records"]):
                raw = binascii.a2b_base64(text.encode())  # the port's binascii takes bytes only
                seq = int.from_bytes(raw[8:12], "big")
                status = "duplicate" if self.records.get(seq) == raw else "accepted"
                self.records[seq] = raw
                results.append({"index": index, "seq": seq, "status": status})
            return 200, json.dumps({"results": results, "acked_seq": self.acked()}).encode()
        if method == "GET" and "/sync?" in path:
            self.syncs += 1
            if "X-Caisse-Health" in headers:
                self.health.append((headers["X-Caisse-Health"], headers["X-Caisse-Health-Signature"],
                                    headers["X-Caisse-Time"]))
            return 200, json.dumps({"v": 3, "accreditation": {"active": True, "ends_at": None},
                                    "server_time": self.clock.now(), "acked_seq": self.acked(),
                                    "cards_version": 5, "full": False, "more": False,
                                    "cards": "", "limits": {}}).encode()
        if method == "POST" and path.endswith("/code-failures"):
            return 200, b'{"recorded": 0}'
        return 404, b'{"error": "not_found"}'

    def dump(self):
        """One line per stored record, for the test to verify in CPython."""
        for seq in sorted(self.records):
            print("@@record", binascii.hexlify(self.records[seq]).decode())
        for body, sig, t in self.health:
            print("@@health", body, sig, t)
