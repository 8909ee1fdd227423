"""What the payment logic needs from a key: the software P-256 key and the ATECC608 both provide it."""


class Signer:
    """Holds a P-256 private key that never leaves the device."""

    def public_key(self) -> bytes:
        """The 65-byte uncompressed public point (0x04 || X || Y)."""
        raise NotImplementedError

    def sign_digest(self, digest: bytes) -> bytes:
        """A 64-byte r || s ECDSA signature over a 32-byte SHA-256 digest."""
        raise NotImplementedError
