"""An SSD1306 on I2C, simulated from its datasheet: control bytes, the commands the driver uses,
and the display RAM (8 pages x 128 columns) written in horizontal addressing mode."""


class SSD1306Sim:
    def __init__(self, width=128, height=64):
        self.width = width
        self.pages = height // 8
        self.ram = bytearray(width * self.pages)
        self.commands = []
        self.on = False
        self._pending = []  # command bytes waiting for their arguments
        self.col = (0, width - 1)
        self.page = (0, self.pages - 1)
        self._x = 0
        self._p = 0

    def write(self, data):
        control = data[0]
        if control in (0x80, 0x00):
            for b in data[1:]:
                self._command(b)
        elif control == 0x40:
            for b in data[1:]:
                self.ram[self._p * self.width + self._x] = b
                self._x += 1
                if self._x > self.col[1]:
                    self._x = self.col[0]
                    self._p = self._p + 1 if self._p < self.page[1] else self.page[0]
        else:
            raise OSError(5)

    def read(self, buf):
        for i in range(len(buf)):
            buf[i] = 0

    _ARGS = {0x81: 1, 0x20: 1, 0x21: 2, 0x22: 2, 0xA8: 1, 0xD3: 1, 0xDA: 1, 0xD5: 1, 0xD9: 1, 0xDB: 1, 0x8D: 1}

    def _command(self, b):
        self._pending.append(b)
        head = self._pending[0]
        if len(self._pending) <= self._ARGS.get(head, 0):
            return
        cmd = self._pending
        self._pending = []
        self.commands.append(tuple(cmd))
        if head in (0xAE, 0xAF):
            self.on = head == 0xAF
        elif head == 0x21:
            self.col = (cmd[1], cmd[2])
            self._x = cmd[1]
        elif head == 0x22:
            self.page = (cmd[1], cmd[2])
            self._p = cmd[1]

    def pixel(self, x, y):
        return (self.ram[(y // 8) * self.width + x] >> (y % 8)) & 1
