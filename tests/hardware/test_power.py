"""The battery life page is computed from its data, its data follow the firmware's own power
constants, and a charge covers the market day with the power management and without it."""

import ast
from pathlib import Path

import pytest

from hardware.tools import power

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "caisse_terminal"


def constant(module: str, name: str) -> int:
    """A module-level constant of the firmware, read from its source (`X = 5` or `X = const(5)`)."""
    for node in ast.parse((FIRMWARE / f"{module}.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value.args[0] if isinstance(node.value, ast.Call) else node.value
            return ast.literal_eval(value)
    raise AssertionError(f"{module}.{name} not found")


def test_power_md_is_generated_from_power_toml():
    assert power.POWER_MD.read_text(encoding="utf-8") == power.render(power.load())


@pytest.mark.parametrize(("key", "module", "name", "scale"), [
    ("nfc_awake_s", "power", "NFC_AWAKE_MS", 1000), ("screen_dim_s", "power", "SCREEN_DIM_MS", 1000),
    ("screen_off_s", "power", "SCREEN_OFF_MS", 1000), ("result_s", "flow", "RESULT_MS", 1000),
    ("sync_every_s", "terminal", "SYNC_EVERY_S", 1),
])
def test_the_duty_cycle_uses_the_firmware_constants(key, module, name, scale):
    assert power.load().firmware[key] * scale == constant(module, name)


def test_each_part_spends_the_whole_cycle_in_its_states():
    budget = power.load()
    s = budget.seconds()
    assert s["field"] + s["power_down"] == pytest.approx(budget.cycle_s)
    assert s["full"] + s["dim"] + s["off"] == pytest.approx(budget.cycle_s)
    assert 0 < s["field"] < budget.cycle_s and s["sync"] < budget.cycle_s


def test_a_charge_lasts_the_goal_and_a_market_day_even_without_power_management():
    budget = power.load()
    assert budget.day_hours() >= budget.raw["goal_hours"]
    assert budget.worst_hours() >= budget.raw["market_day_hours"]
    assert budget.worst_ma() > budget.average_ma()


def test_the_average_is_the_sum_of_the_parts_plus_the_regulator():
    budget = power.load()
    parts = budget.parts_ma()
    assert budget.average_ma() == pytest.approx(sum(parts.values()))
    assert parts["others and LDO"] == pytest.approx(budget.current["others"] + budget.ldo_ma)
