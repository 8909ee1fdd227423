"""Fake machine.Pin and machine.PWM for the keypad, buzzer and LED drivers."""


class KeyMatrix:
    """A 4x4 membrane: row pins driven by the driver, column pins read back."""

    def __init__(self, nrows=4, ncols=4):
        self.pressed = set()  # (row, col)
        self.rows = [_RowPin(self) for _ in range(nrows)]
        self.cols = [_ColPin(self, c) for c in range(ncols)]

    def press(self, row, col):
        self.pressed.add((row, col))

    def release(self, row=None, col=None):
        if row is None:
            self.pressed.clear()
        else:
            self.pressed.discard((row, col))


class _RowPin:
    def __init__(self, matrix):
        self.matrix = matrix
        self.level = 1

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0


class _ColPin:
    def __init__(self, matrix, col):
        self.matrix = matrix
        self.col = col

    def value(self, v=None):
        for r, row in enumerate(self.matrix.rows):
            if row.level == 0 and (r, self.col) in self.matrix.pressed:
                return 0
        return 1  # pull-up


class OutPin:
    def __init__(self):
        self.level = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0


class FakePWM:
    def __init__(self):
        self.frequency = 0
        self.duty = 0

    def freq(self, f=None):
        if f is None:
            return self.frequency
        self.frequency = f

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d
