"""The software P-256 key: for boards without an ATECC608, and for the simulator.

The secret is made once from the device's random source and kept in one flash file; it never
leaves the device (only the public key is shown, at provisioning).
"""

from . import p256
from .signer import Signer

KEY_FILE = "key.bin"


class SoftwareSigner(Signer):
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._public = None
        self.idle = None  # called during each signature (Terminal sets its pump here)

    @classmethod
    def load_or_create(cls, storage, urandom=None) -> "SoftwareSigner":
        """The key stored in `storage`, or a new one from urandom(n) (default os.urandom)."""
        secret = storage.read(KEY_FILE)
        if secret is None or len(secret) != 32:
            if urandom is None:
                import os
                urandom = os.urandom  # absent on the WebAssembly port: tests pass their own
            while True:
                secret = bytes(urandom(32))
                try:
                    p256.public_key(secret)  # rejects 0 and values >= n
                    break
                except ValueError:
                    pass
            storage.replace(KEY_FILE, secret)
            storage.sync()
        return cls(secret)

    def public_key(self) -> bytes:
        if self._public is None:
            self._public = p256.public_key(self._secret)
        return self._public

    def sign_digest(self, digest: bytes) -> bytes:
        return p256.sign_digest(self._secret, digest, self.idle)
