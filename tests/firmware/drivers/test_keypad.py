"""Keypad matrix scan, debounce and ring buffer against a simulated membrane."""

from tests.firmware.drivers.mp import mp

SETUP = """
from pins import KeyMatrix
from drivers.keypad import MatrixKeypad
m = KeyMatrix()
kp = MatrixKeypad(m.rows, m.cols, queue_size=4)
def scans(n):
    for _ in range(n):
        kp.scan()
"""


def test_a_bounce_shorter_than_the_debounce_gives_no_key():
    out = mp(SETUP + "m.press(1, 1); scans(2); m.release(); scans(5); print(kp.read_key())")
    assert out.strip() == "None"


def test_a_held_key_gives_one_press_and_a_second_press_gives_another():
    out = mp(
        SETUP
        + """
m.press(1, 1); scans(10)
print(kp.read_key(), kp.read_key())
m.release(); scans(3); m.press(1, 1); scans(3)
print(kp.read_key())
"""
    )
    assert out.split() == ["5", "None", "5"]


def test_every_key_maps_to_a_digit_or_a_terminal_function():
    out = mp(
        SETUP
        + """
kp = MatrixKeypad(m.rows, m.cols, queue_size=17)
keys = ""
for r in range(4):
    for c in range(4):
        m.press(r, c); scans(3); m.release(); scans(3)
        keys += kp.read_key()
print(keys)
"""
    )
    # 1 2 3 A / 4 5 6 B / 7 8 9 C / * 0 # D: A menu, B correction, C cancel, * comma, # and D validate
    assert out.strip() == "123M456<789X,0VV"


def test_the_ring_buffer_keeps_the_oldest_presses_when_full():
    out = mp(
        SETUP
        + """
for col in range(4):
    m.press(0, col % 3); scans(3); m.release(); scans(3)
m.press(2, 0); scans(3); m.release(); scans(3)
print(kp.read_key(), kp.read_key(), kp.read_key(), kp.read_key(), kp.dropped)
"""
    )
    assert out.split() == ["1", "2", "3", "None", "2"]


def test_the_asyncio_task_scans_once_per_step():
    # The browser port of MicroPython has no asyncio.run and its sleep waits on JavaScript:
    # give the driver a sleep that yields once, and step the coroutine by hand.
    out = mp(
        SETUP
        + """
import drivers.keypad as K
class OneStep:
    @staticmethod
    def sleep(s):
        yield None
K.asyncio = OneStep
task = kp.run()
m.press(3, 3)
keys = []
for _ in range(4):
    task.send(None)
    keys.append(kp.read_key())
print(keys)
"""
    )
    assert out.strip() == "[None, None, 'V', None]"
