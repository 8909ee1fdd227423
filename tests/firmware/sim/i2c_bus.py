"""A fake machine.I2C: routes each transaction to the simulated chip at that address.

A chip is any object with `write(data)` and `read(buf)`; either may raise OSError(19) to NACK
its address, as a real device that is asleep or busy does. Address 0x00 (general call) is
offered to every chip's optional `general_call(data)`; nobody ACKs it, like on the real bus.
"""

_ENODEV = 19


class FakeI2C:
    def __init__(self, *chips_at):
        self.chips = {}
        for address, chip in chips_at:
            self.chips[address] = chip
        self.log = []  # (op, address, bytes written or read length) of every transaction

    def add(self, address, chip):
        self.chips[address] = chip

    def _chip(self, address):
        chip = self.chips.get(address)
        if chip is None:
            raise OSError(_ENODEV)
        return chip

    def scan(self):
        found = []
        for address in sorted(self.chips):
            chip = self.chips[address]
            if getattr(chip, "present", True) and not getattr(chip, "asleep", False):
                found.append(address)
        return found

    def writeto(self, address, buf, stop=True):
        self.log.append(("w", address, bytes(buf)))
        if address == 0:
            for chip in self.chips.values():
                hook = getattr(chip, "general_call", None)
                if hook is not None:
                    hook(bytes(buf))
            raise OSError(_ENODEV)
        self._chip(address).write(bytes(buf))
        return len(buf)

    def writevto(self, address, vector, stop=True):
        data = b"".join(bytes(v) for v in vector)
        return self.writeto(address, data, stop)

    def readfrom_into(self, address, buf, stop=True):
        self.log.append(("r", address, len(buf)))
        self._chip(address).read(buf)

    def readfrom(self, address, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(address, buf, stop)
        return bytes(buf)
