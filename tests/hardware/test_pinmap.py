"""The pin map is legal on the ESP32, and the firmware and the diagram follow it."""

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from hardware.tools import gen_board, wiring_svg
from hardware.tools.pinmap import load, problems


@pytest.fixture(scope="module")
def pinmap():
    return load()


def test_the_reference_pin_map_breaks_no_rule(pinmap):
    assert problems(pinmap) == []


def test_firmware_board_py_is_generated_from_the_pin_map(pinmap):
    assert gen_board.BOARD_PY.read_text(encoding="utf-8") == gen_board.render(pinmap)


def test_board_py_values_are_the_pin_map_gpios(pinmap):
    namespace: dict = {}
    source = gen_board.BOARD_PY.read_text(encoding="utf-8").replace("from micropython import const", "const = int")
    exec(source, namespace)
    for signal in pinmap.signals:
        assert namespace[signal.name] == signal.gpio
    assert namespace["ADDR_ATECC608"] == pinmap.addresses["ATECC608"]
    assert len(namespace["KEYPAD_ROWS"]) == len(namespace["KEYPAD_COLS"]) == 4


def test_no_gpio_is_used_twice(pinmap):
    gpios = [s.gpio for s in pinmap.signals]
    assert len(gpios) == len(set(gpios))


def _with(pinmap, name, **changes):
    signals = tuple(dataclasses.replace(s, **changes) if s.name == name else s for s in pinmap.signals)
    return dataclasses.replace(pinmap, signals=signals)


@pytest.mark.parametrize(
    ("name", "changes", "complaint"),
    [
        ("BUZZER", {"gpio": 21}, "GPIO21 is used by both"),
        ("BUZZER", {"gpio": 7}, "SPI flash"),
        ("BUZZER", {"gpio": 12}, "strapping pin"),
        ("LED_RED", {"gpio": 0}, "strapping pin"),
        ("LED_RED", {"gpio": 1}, "USB console"),
        ("BUZZER", {"gpio": 36}, "input-only, cannot be 'out'"),
        ("KEY_COL1", {"gpio": 36}, "no internal pull-up"),
        ("BUZZER", {"gpio": 24}, "no such GPIO"),
        ("BUZZER", {"to": ("BUZZER.NOPE",)}, "unknown part pin"),
    ],
)
def test_each_esp32_rule_catches_a_bad_pin(pinmap, name, changes, complaint):
    found = problems(_with(pinmap, name, **changes))
    assert any(complaint in p for p in found), found


def test_wiring_svg_is_regenerated_identically(pinmap):
    assert wiring_svg.WIRING_SVG.read_text(encoding="utf-8") == wiring_svg.render(pinmap)


def test_wiring_svg_parses_and_draws_every_signal(pinmap):
    root = ET.fromstring(wiring_svg.WIRING_SVG.read_text(encoding="utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    for signal in pinmap.signals:
        assert f"GPIO{signal.gpio} {signal.name}" in texts
        assert signal.name in titles
    for part in pinmap.parts.values():
        assert part["label"] in texts
