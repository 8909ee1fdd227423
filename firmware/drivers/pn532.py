"""NXP PN532 NFC controller over I2C (PN532 User Manual UM0701-02, section 6.2).

Host to PN532, a normal information frame:

    00 00 FF LEN LCS TFI PD0 .. PDn DCS 00
    LEN = bytes in TFI..PDn;  LEN + LCS = 0 (mod 256)
    TFI = D4 (host to PN532) or D5 (PN532 to host);  TFI + PD0 + .. + PDn + DCS = 0 (mod 256)

ACK is 00 00 FF 00 FF 00, NACK 00 00 FF FF 00 00 (asks the PN532 to send its last frame again),
and an application-level error is the frame 00 00 FF 01 FF 7F 81 00. Over I2C every read starts
with a status byte whose bit 0 (RDY) tells whether a frame follows; the host polls it (or waits
for P70_IRQ to go low), reads the ACK, then polls again for the response.

A response answers command code C with code C + 1. Timeouts are host-side: a PN532 that never
becomes ready raises PN532Timeout after timeout_ms, never a hang.
"""

import time

from micropython import const

_PREAMBLE = b"\x00\x00\xff"
_ACK = b"\x00\x00\xff\x00\xff\x00"
_NACK = b"\x00\x00\xff\xff\x00\x00"
_TFI_HOST = const(0xD4)
_TFI_PN532 = const(0xD5)
_TFI_ERROR = const(0x7F)
_STATUS_READY = const(0x01)  # bit 0 of the I2C status byte

# Commands (UM0701-02 section 7)
_CMD_GET_FIRMWARE_VERSION = const(0x02)
_CMD_SAM_CONFIGURATION = const(0x14)
_CMD_POWER_DOWN = const(0x16)
_CMD_RF_CONFIGURATION = const(0x32)
_CMD_IN_DATA_EXCHANGE = const(0x40)
_CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)
_CMD_IN_RELEASE = const(0x52)

_RF_ITEM_MAX_RETRIES = const(0x05)  # MxRtyATR, MxRtyPSL, MxRtyPassiveActivation
_BRTY_106_TYPE_A = const(0x00)  # InListPassiveTarget: ISO 14443A at 106 kbps
_SEL_RES_ISO_DEP = const(0x20)  # SAK bit 6: the card speaks ISO 14443-4 (APDUs)
_IC_PN532 = const(0x32)

# InDataExchange status byte, low 6 bits (UM0701-02 table "Error code list")
_STATUS_TIMEOUT = const(0x01)  # the target has not answered: it left the field
_STATUS_MASK = const(0x3F)

_MAX_DATA = const(254)  # TFI + PD of one normal frame, LEN <= 255
_FRAME_OVERHEAD = const(7)  # preamble (3), LEN, LCS, DCS, postamble
_POLL_MS = const(2)
_WAKE_MS = const(10)  # RSTPDN pulse, and the oscillator's start after a reset or a wake-up


class PN532Error(Exception):
    """Base of every PN532 failure."""


class PN532Timeout(PN532Error):
    """The PN532 did not become ready within the timeout."""


class FrameError(PN532Error):
    """A frame was truncated, had a wrong checksum, or was not the expected answer."""


class Nack(FrameError):
    """The PN532 answered NACK: it did not understand the frame we sent."""


class ApplicationError(PN532Error):
    """The PN532 sent its error frame (syntax error in the command)."""


class CardGone(PN532Error):
    """The card stopped answering in the middle of an exchange (it left the field)."""


class CardError(PN532Error):
    """The exchange with the card failed; .status holds the PN532 error code."""

    def __init__(self, status):
        super().__init__("card exchange failed, PN532 status 0x%02x" % status)
        self.status = status


class PN532:
    """A PN532 on an I2C bus (machine.I2C or anything with writeto/readfrom_into)."""

    def __init__(self, i2c, address=0x24, *, reset=None, timeout_ms=500, sleep_ms=None, ticks_ms=None):
        self.i2c = i2c
        self.address = address
        self.reset_pin = reset
        self.timeout_ms = timeout_ms
        self._sleep_ms = sleep_ms or time.sleep_ms
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._out = bytearray(_MAX_DATA + _FRAME_OVERHEAD)
        self._rx = bytearray(1 + _MAX_DATA + _FRAME_OVERHEAD)
        self._rxv = memoryview(self._rx)
        self._status = bytearray(1)
        if reset is not None:
            reset.value(1)
        try:
            ic, ver, rev, _ = self.firmware_version()
        except (OSError, PN532Error) as e:
            raise OSError("PN532 not answering at I2C address 0x%02x (%r)" % (address, e)) from e
        if ic != _IC_PN532:
            raise OSError("chip at 0x%02x is not a PN532 (IC 0x%02x)" % (address, ic))
        self.version = (ver, rev)

    # --- frames -------------------------------------------------------------------------------

    def _write_frame(self, data):
        """Frame `data` (TFI and PD bytes) into the preallocated buffer and send it."""
        n = len(data)
        if not 0 < n <= _MAX_DATA:
            raise ValueError("frame data length")
        out = self._out
        out[0] = 0x00
        out[1] = 0x00
        out[2] = 0xFF
        out[3] = n
        out[4] = (-n) & 0xFF
        total = 0
        for i in range(n):
            out[5 + i] = data[i]
            total += data[i]
        out[5 + n] = (-total) & 0xFF
        out[6 + n] = 0x00
        self.i2c.writeto(self.address, memoryview(out)[: n + _FRAME_OVERHEAD])

    def _wait_ready(self, timeout_ms):
        start = self._ticks_ms()
        while True:
            try:
                self.i2c.readfrom_into(self.address, self._status)
                if self._status[0] & _STATUS_READY:
                    return
            except OSError:
                pass  # the PN532 holds off its address while busy on some boards
            if time.ticks_diff(self._ticks_ms(), start) >= timeout_ms:
                raise PN532Timeout("PN532 not ready after %d ms" % timeout_ms)
            self._sleep_ms(_POLL_MS)

    def _read_ack(self, timeout_ms):
        self._wait_ready(timeout_ms)
        rx = self._rxv[:7]
        self.i2c.readfrom_into(self.address, rx)
        frame = rx[1:7]
        if frame == _ACK:
            return
        if frame == _NACK:
            raise Nack("PN532 answered NACK")
        raise FrameError("expected ACK, got %s" % bytes(frame))

    def _read_response(self, command, capacity, timeout_ms):
        """Read and check the response to `command`; return a memoryview of its data (PD1..)."""
        for attempt in range(2):
            self._wait_ready(timeout_ms)
            rx = self._rxv[: 1 + _FRAME_OVERHEAD + 2 + capacity]
            self.i2c.readfrom_into(self.address, rx)
            try:
                return self._parse(rx, command)
            except ApplicationError:
                raise
            except FrameError:
                if attempt:
                    raise
                self.i2c.writeto(self.address, _NACK)  # ask for the same frame once more
        raise FrameError("unreachable")

    def _parse(self, rx, command):
        # rx[0] is the I2C status byte; the frame may start after extra 00 bytes.
        i = 1
        n = len(rx)
        while i < n - 2 and not (rx[i] == 0x00 and rx[i + 1] == 0xFF):
            i += 1
        if i >= n - 4:
            raise FrameError("no frame start")
        length = rx[i + 2]
        if (length + rx[i + 3]) & 0xFF:
            raise FrameError("bad LCS")
        body = i + 4
        if length == 0 or body + length + 2 > n:
            raise FrameError("truncated frame (LEN %d)" % length)
        total = 0
        for k in range(body, body + length + 1):
            total += rx[k]
        if total & 0xFF:
            raise FrameError("bad DCS")
        if rx[body] == _TFI_ERROR:
            raise ApplicationError("PN532 application error frame")
        if length < 2 or rx[body] != _TFI_PN532 or rx[body + 1] != command + 1:
            raise FrameError("unexpected response to command 0x%02x" % command)
        return rx[body + 2 : body + length]

    def call(self, command, params=b"", *, capacity=32, timeout_ms=None):
        """Send one command and return its response data (a memoryview valid until the next call)."""
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        data = self._rx  # reuse: the command bytes are copied into _out before any read
        data[0] = _TFI_HOST
        data[1] = command
        n = len(params)
        data[2 : 2 + n] = params
        self._write_frame(memoryview(data)[: 2 + n])
        try:
            self._read_ack(timeout_ms)
            return self._read_response(command, capacity, timeout_ms)
        except PN532Timeout:
            try:
                self.i2c.writeto(self.address, _ACK)  # an ACK from the host aborts the command
            except OSError:
                pass
            raise

    # --- commands -----------------------------------------------------------------------------

    def firmware_version(self):
        """(IC, Ver, Rev, Support): IC is 0x32 for a PN532."""
        d = self.call(_CMD_GET_FIRMWARE_VERSION, capacity=4)
        if len(d) != 4:
            raise FrameError("firmware version length")
        return d[0], d[1], d[2], d[3]

    def sam_configuration(self, mode=0x01, timeout=0x14, use_irq=True):
        """Normal mode (no SAM); the PN532 raises P70_IRQ when a response is ready."""
        self.call(_CMD_SAM_CONFIGURATION, bytes((mode, timeout, 1 if use_irq else 0)), capacity=0)

    def set_passive_retries(self, retries):
        """How many times InListPassiveTarget retries before answering 'no card' (0xFF: forever)."""
        self.call(_CMD_RF_CONFIGURATION, bytes((_RF_ITEM_MAX_RETRIES, 0xFF, 0x01, retries)), capacity=0)

    def list_passive_target(self, timeout_ms=None):
        """One ISO 14443A target in the field, as (uid, sel_res, ats); None when there is none.

        ats is b"" for a card without ISO 14443-4 (no APDUs).
        """
        d = self.call(_CMD_IN_LIST_PASSIVE_TARGET, bytes((1, _BRTY_106_TYPE_A)), capacity=64, timeout_ms=timeout_ms)
        if len(d) < 1 or d[0] == 0:
            return None
        # NbTg, Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1 .., [ATS: TL, T0 ..]
        if len(d) < 6 or len(d) < 6 + d[5]:
            raise FrameError("truncated target data")
        uid_len = d[5]
        uid = bytes(d[6 : 6 + uid_len])
        sel_res = d[4]
        ats = b""
        rest = 6 + uid_len
        if sel_res & _SEL_RES_ISO_DEP and len(d) > rest:
            ats = bytes(d[rest : rest + d[rest]])
        return uid, sel_res, ats

    def data_exchange(self, data, *, target=1, capacity=80, timeout_ms=None):
        """Send `data` (an APDU for an ISO-DEP card) to the target; return its answer.

        Raises CardGone when the card does not answer (it left the field), CardError otherwise.
        """
        if len(data) > _MAX_DATA - 3:
            raise ValueError("too long for one frame")
        d = self.call(_CMD_IN_DATA_EXCHANGE, bytes((target,)) + bytes(data), capacity=capacity + 1, timeout_ms=timeout_ms)
        if len(d) < 1:
            raise FrameError("empty InDataExchange response")
        status = d[0] & _STATUS_MASK
        if status == _STATUS_TIMEOUT:
            raise CardGone("the card left the field")
        if status:
            raise CardError(status)
        return d[1:]

    def release(self):
        """Deselect every target (InRelease), so the next poll starts clean."""
        self.call(_CMD_IN_RELEASE, b"\x00", capacity=1)

    def power_down(self):
        """Soft power-down until the next I2C access (PowerDown, wake-up on I2C): the RF field
        and the oscillator stop, about 10 uA instead of ~100 mA with the field on."""
        self.call(_CMD_POWER_DOWN, b"\x80", capacity=1)

    def wake(self):
        """Leave power-down: the first I2C frame wakes the PN532 and may be lost, so a second
        GetFirmwareVersion follows a failed first one (UM0701-02 section 7.2.11)."""
        try:
            self.firmware_version()
        except (OSError, PN532Error):
            self._sleep_ms(_WAKE_MS)
            self.firmware_version()

    def hard_reset(self):
        """Pulse RSTPDN low when the pin is wired (a wedged PN532 restarts from scratch), then
        wait for its oscillator. Returns False without the pin."""
        if self.reset_pin is None:
            return False
        self.reset_pin.value(0)
        self._sleep_ms(_WAKE_MS)
        self.reset_pin.value(1)
        self._sleep_ms(_WAKE_MS)
        return True
