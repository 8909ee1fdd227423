"""A USB PN532 reader on the technician's computer: PN532 HSU (UART) framing over pyserial.

PN532 User Manual UM0701-02: the frames are those of the terminal's I2C driver
(firmware/drivers/pn532.py) without the I2C status byte,

    00 00 FF LEN LCS TFI PD0 .. PDn DCS 00      (LEN + LCS = 0, TFI + PD.. + DCS = 0 mod 256)

and the PN532 answers each command with ACK (00 00 FF 00 FF 00) then the response frame. Over
HSU it sleeps until woken by a long preamble (55 55 00 00 ..), after which SAMConfiguration puts
it in normal mode. Reads time out through the serial port's own timeout (one second).

The port is any object with write(bytes) and read(n) -> bytes (pyserial's Serial; in tests a
simulated PN532 behind a fake port).
"""

from __future__ import annotations

from typing import Protocol

_WAKE_UP = b"\x55\x55" + bytes(14)
_ACK = b"\x00\x00\xff\x00\xff\x00"
_TFI_HOST = 0xD4
_TFI_PN532 = 0xD5
_CMD_SAM_CONFIGURATION = 0x14
_CMD_IN_DATA_EXCHANGE = 0x40
_CMD_IN_LIST_PASSIVE_TARGET = 0x4A
_CMD_IN_RELEASE = 0x52
_SEL_RES_ISO_DEP = 0x20
_STATUS_MASK = 0x3F
BAUD_RATE = 115_200
READ_TIMEOUT_S = 1.0


class SerialPort(Protocol):
    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...


class ReaderError(Exception):
    """The reader or the card stopped answering; the message is for the technician (French)."""


def open_port(port: str) -> SerialPort:
    """The serial port of a USB PN532 (HSU at 115200 baud)."""
    import serial

    try:
        return serial.Serial(port, BAUD_RATE, timeout=READ_TIMEOUT_S)
    except serial.SerialException as error:
        raise ReaderError(f"Impossible d'ouvrir le lecteur sur {port} ({error}). Le lecteur est-il branché, "
                          "et en mode HSU (interrupteurs de l'adaptateur) ?") from None


def frame(data: bytes) -> bytes:
    n = len(data)
    return bytes([0x00, 0x00, 0xFF, n, (-n) & 0xFF]) + data + bytes([(-sum(data)) & 0xFF, 0x00])


class PN532Uart:
    def __init__(self, port: SerialPort) -> None:
        self._port = port
        self._port.write(_WAKE_UP)
        self.call(_CMD_SAM_CONFIGURATION, bytes([0x01, 0x14, 0x00]))

    def _read_exactly(self, size: int) -> bytes:
        data = self._port.read(size)
        if len(data) != size:
            raise ReaderError("Le lecteur NFC ne répond plus. Vérifiez le câble USB et relancez.")
        return data

    def _read_frame(self) -> bytes:
        window = b""
        while window != b"\x00\xff":  # skip the preamble, whatever its length
            window = (window + self._read_exactly(1))[-2:]
        length, checksum = self._read_exactly(2)
        if (length + checksum) & 0xFF:
            raise ReaderError("Trame du lecteur NFC abîmée (LCS). Relancez.")
        body = self._read_exactly(length + 2)
        if sum(body[:-1]) & 0xFF:
            raise ReaderError("Trame du lecteur NFC abîmée (DCS). Relancez.")
        return body[:length]

    def call(self, command: int, params: bytes = b"") -> bytes:
        """Send a command, wait for its ACK and its response; return the response data."""
        self._port.write(frame(bytes([_TFI_HOST, command]) + params))
        if self._read_exactly(6) != _ACK:
            raise ReaderError("Le lecteur NFC n'a pas accusé réception de la commande. Relancez.")
        body = self._read_frame()
        if len(body) < 2 or body[0] != _TFI_PN532 or body[1] != command + 1:
            raise ReaderError(f"Réponse inattendue du lecteur NFC à la commande {command:#04x}.")
        return body[2:]

    def find_card(self) -> tuple[bytes, bytes] | None:
        """(UID, ATS) of the ISO 14443A card on the reader (ATS empty without ISO-DEP), or None."""
        d = self.call(_CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00")
        if not d or d[0] == 0:
            return None
        uid = d[6:6 + d[5]]
        ats = d[6 + d[5]:] if d[4] & _SEL_RES_ISO_DEP else b""
        return uid, ats

    def transceive(self, apdu: bytes) -> bytes:
        """One APDU to the listed card (InDataExchange); its answer, status word included."""
        d = self.call(_CMD_IN_DATA_EXCHANGE, b"\x01" + apdu)
        if not d or d[0] & _STATUS_MASK:
            status = d[0] if d else 0xFF
            raise ReaderError(f"La carte ne répond plus (statut PN532 {status:#04x}). "
                              "Laissez-la posée sur le lecteur pendant toute l'opération et relancez.")
        return d[1:]

    def release(self) -> None:
        self.call(_CMD_IN_RELEASE, b"\x00")
