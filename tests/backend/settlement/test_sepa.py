"""The pain.001 version is chosen by the caisse's bank; each version's file validates against its XSD."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from caisse.config import Settings
from caisse.settlement import sepa
from tests.backend.settlement.test_settlement import Market, _control_sum_cents, _sepa, _settle, _texts
from tests.fixtures.database import make_settings

VERSIONS = ["pain.001.001.03", "pain.001.001.09", "pain.001.001.10", "pain.001.001.11"]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_file_is_built_and_validated_in_the_version_of_the_caisses_bank(
    session: Session, engine: Engine, rules: Settings, folder: Path, version: str
) -> None:
    bank = rules.model_copy(update={"debtor_bic": "CEPAFRPP313", "sepa_schema_by_bank": {"CEPAFRPP": version}})
    market = Market(session, bank, vendors=3)
    for index, amount in enumerate((1_000, 2_345, 67)):
        market.pay(index, amount)
    _settle(engine, bank)
    [path] = folder.glob("*/virements-sepa.xml")
    sepa.xsd(version).validate(str(path))
    root = _sepa(folder)
    assert root.tag == f"{{urn:iso:std:iso:20022:tech:xsd:{version}}}Document"
    assert _control_sum_cents(root) == 3_412
    assert len(_texts(root, ".//CdtTrfTxInf")) == 3


def test_the_version_is_looked_up_by_full_bic_then_by_bank_then_defaults() -> None:
    table = {"CEPAFRPP313": "pain.001.001.11", "cepafrpp": "pain.001.001.09", "AGRIFRPP": "pain.001.001.10"}
    assert sepa.schema_for_bank(make_settings(debtor_bic="CEPAFRPP313", sepa_schema_by_bank=table)) == "pain.001.001.11"
    assert sepa.schema_for_bank(make_settings(debtor_bic="CEPAFRPP751", sepa_schema_by_bank=table)) == "pain.001.001.09"
    assert sepa.schema_for_bank(make_settings(debtor_bic="agrifrppxxx", sepa_schema_by_bank=table)) == "pain.001.001.10"
    assert sepa.schema_for_bank(make_settings(debtor_bic="BNPAFRPP", sepa_schema_by_bank=table,
                                              sepa_schema="pain.001.001.09")) == "pain.001.001.09"


def test_a_version_sepaxml_cannot_build_is_refused_in_the_settings() -> None:
    with pytest.raises(ValidationError):
        make_settings(sepa_schema_by_bank={"CEPAFRPP": "pain.001.001.08"})
    with pytest.raises(ValidationError):
        make_settings(sepa_schema="pain.001.002.03")
