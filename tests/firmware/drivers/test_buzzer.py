"""Buzzer and LED patterns: approve, decline and error told apart by sound alone."""

from tests.firmware.drivers.mp import mp

SETUP = """
from pins import FakePWM, OutPin
from drivers.buzzer import BuzzerLed
pwm = FakePWM(); green = OutPin(); red = OutPin()
now = [0]
ind = BuzzerLed(pwm, green, red, ticks_ms=lambda: now[0])

def record(start):
    # Play the pattern to its end at 1 ms steps; return the beeps as (freq, ms) and LED colours.
    now[0] = 0
    start()
    beeps = []
    leds = set()
    on = None
    t = 0
    while ind.busy and t < 5000:
        ind.tick(t)
        if green.level: leds.add("green")
        if red.level: leds.add("red")
        sounding = pwm.duty > 0
        if sounding and on is None:
            on = (pwm.frequency, t)
        if not sounding and on is not None:
            beeps.append((on[0], t - on[1]))
            on = None
        t += 1
    return beeps, sorted(leds), pwm.duty, green.level, red.level
"""


def test_each_outcome_has_its_own_beeps_and_colour_and_ends_silent():
    out = mp(
        SETUP
        + """
for name in ("approve", "decline", "error", "key_click"):
    print(name, record(getattr(ind, name)))
"""
    )
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert lines["approve"] == "([(2700, 150)], ['green'], 0, 0, 0)"
    assert lines["decline"] == "([(900, 300), (900, 300)], ['red'], 0, 0, 0)"
    assert lines["error"] == "([(2000, 80), (2000, 80), (2000, 80)], ['red'], 0, 0, 0)"
    assert lines["key_click"] == "([(2700, 15)], [], 0, 0, 0)"


def test_a_new_pattern_replaces_the_one_playing_at_once():
    out = mp(SETUP + "ind.decline()\nind.tick(10)\nind.approve()\nprint(pwm.frequency, green.level, red.level)")
    assert out.split() == ["2700", "1", "0"]
