"""The power budget page is computed from its data and covers a market day."""

from hardware.tools import power


def test_power_md_is_generated_from_power_toml():
    assert power.POWER_MD.read_text(encoding="utf-8") == power.render(power.load())


def test_the_state_shares_of_a_market_day_add_up_to_one():
    budget = power.load()
    assert abs(sum(s["share"] for s in budget.states) - 1.0) < 1e-9
    assert {"idle", "nfc", "wifi", "deep_sleep"} <= {s["key"] for s in budget.states}


def test_a_charge_lasts_a_market_day_even_polling_nonstop():
    budget = power.load()
    assert budget.worst_hours() > budget.market_day_hours
    assert budget.day_hours() > 2 * budget.market_day_hours


def test_state_current_is_the_sum_of_its_parts_plus_the_regulator():
    budget = power.load()
    nfc = next(s for s in budget.states if s["key"] == "nfc")
    assert budget.state_ma(nfc) == nfc["esp32"] + nfc["pn532"] + nfc["oled"] + nfc["others"] + budget.ldo_ma
