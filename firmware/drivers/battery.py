"""The cell's voltage through the 100k/100k divider on BATTERY_SENSE (hardware/pinmap.toml).

The ESP32's ADC1 (it keeps working while Wi-Fi is on) at 11 dB attenuation reads up to about
2.45 V: the divider halves the cell's 4.2 V to 2.1 V. read_uv() is the port's calibrated
reading (eFuse calibration, MicroPython >= 1.20); the 100 nF capacitor across the lower
resistor gives the ADC's sampling capacitor a low-impedance source, and a few readings are
averaged.
"""

from micropython import const

_SAMPLES = const(8)


class Battery:
    def __init__(self, adc, *, ratio=2, samples=_SAMPLES):
        """adc: machine.ADC(Pin(board.BATTERY_SENSE), atten=ADC.ATTN_11DB); ratio: the divider's."""
        self.adc = adc
        self.ratio = ratio
        self.samples = samples

    def read_mv(self):
        total = 0
        for _ in range(self.samples):
            total += self.adc.read_uv()
        return total * self.ratio // (self.samples * 1000)
