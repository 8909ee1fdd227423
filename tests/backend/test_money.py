import pytest

from caisse.money import euros


@pytest.mark.parametrize(("cents", "text"), [(0, "0,00"), (5, "0,05"), (-5, "-0,05"), (123_456, "1234,56")])
def test_euros_are_formatted_exactly(cents: int, text: str) -> None:
    assert euros(cents) == text


@pytest.mark.parametrize(
    ("cents", "text"),
    [(99, "0,99"), (123_456, "1\u202f234,56"), (-100_000_001, "-1\u202f000\u202f000,01"), (2**53 + 1, "90\u202f071\u202f992\u202f547\u202f409,93")],
)
def test_grouped_euros_stay_exact_past_float_precision(cents: int, text: str) -> None:
    assert euros(cents, grouped=True) == text
