"""The bill of materials adds up and stays under the target price."""

import csv
from decimal import Decimal
from pathlib import Path

BOM = Path(__file__).resolve().parents[2] / "hardware" / "bom.csv"
COLUMNS = ["part", "role", "quantity", "generic_part_number", "unit_price_eur", "line_total_eur"]
TARGET_EUR = Decimal("35")


def rows():
    with BOM.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_every_line_is_complete_and_its_total_is_quantity_times_price():
    lines = rows()[:-1]
    assert len(lines) >= 10
    for line in lines:
        assert all(line[c].strip() for c in COLUMNS), line
        assert int(line["quantity"]) >= 1
        assert Decimal(line["unit_price_eur"]) * int(line["quantity"]) == Decimal(line["line_total_eur"]), line


def test_the_total_row_is_the_sum_of_the_lines_and_under_target():
    *lines, total = rows()
    assert total["part"] == "TOTAL"
    computed = sum(Decimal(line["line_total_eur"]) for line in lines)
    assert Decimal(total["line_total_eur"]) == computed
    assert computed < TARGET_EUR


def test_the_bom_has_every_part_of_the_reference_design():
    text = BOM.read_text(encoding="utf-8")
    for needed in ("ESP32", "ATECC608", "PN532", "SSD1309", "keypad", "buzzer", "LED", "18650", "TP4056", "enclosure"):
        assert needed.lower() in text.lower(), needed
