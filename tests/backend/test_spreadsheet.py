"""What staff's spreadsheets produce must read the same: encodings, separators, French headers."""

import pytest

from caisse.errors import InvalidInput
from caisse.spreadsheet import Column, RowErrors, read_table

COLUMNS = (Column("household_id", ("foyer", "numéro de foyer")), Column("amount", ("montant",)),
           Column("note", ("remarque",), required=False))


@pytest.mark.parametrize("data", [
    b"Foyer;Montant\r\n12;10,50\r\n",
    "\ufeffFoyer;Montant\r\n12;10,50\r\n".encode(),
    "FOYER,montant\n12,\"10,50\"\n".encode("cp1252"),
    "Numéro de foyer\tMontant\n12\t10,50\n".encode("cp1252"),
    b"numero_de_foyer;MONTANT\n\n12;10,50\n",
])
def test_the_same_table_whatever_the_spreadsheet_saved(data: bytes) -> None:
    rows = read_table(data, COLUMNS)
    assert [(row["household_id"], row["amount"], row["note"]) for row in rows] == [("12", "10,50", "")]


def test_windows_1252_accents_survive() -> None:
    rows = read_table("foyer;montant;remarque\n1;2;Crèche Élise\n".encode("cp1252"), COLUMNS)
    assert rows[0]["note"] == "Crèche Élise"


def test_line_numbers_count_the_header_and_blank_lines() -> None:
    rows = read_table(b"foyer;montant\n1;2\n\n3;4\n", COLUMNS)
    assert [row.line for row in rows] == [2, 4]


def test_missing_columns_are_named_in_french() -> None:
    with pytest.raises(InvalidInput) as caught:
        read_table(b"foyer;somme\n1;2\n", COLUMNS)
    assert caught.value.code == "missing_columns" and "montant" in caught.value.detail


@pytest.mark.parametrize("data", [b"", b"\n \n", "\ufeff".encode()])
def test_an_empty_file_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="vide"):
        read_table(data, COLUMNS)


def test_row_errors_read_as_french_lines() -> None:
    errors = RowErrors()
    assert not errors
    errors.add(3, "montant invalide")
    assert errors and errors.lines() == ["ligne 3 : montant invalide"]
