# The firmware's version, sent on every sync (X-Caisse-Firmware, docs/protocol.md) and shown
# in the console. At most 32 printable ASCII characters.
VERSION = "0.1.0"
