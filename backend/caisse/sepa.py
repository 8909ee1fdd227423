"""SEPA credit transfers (pain.001) for a settlement run, in the version the caisse's bank accepts.

Banks move from pain.001.001.03 to the 2019 versions at their own pace, so the version is chosen
by the BIC of the caisse's own account (`sepa_schema_by_bank`, full BIC or its first 8 letters),
with `sepa_schema` as the default. sepaxml builds the file; it is validated against the XSD of
that version (shipped with sepaxml) before it is written, so an invalid file is never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caisse.config import Settings
from caisse.models import SettlementRun

if TYPE_CHECKING:
    from caisse.settlement import Payout


def schema_for_bank(settings: Settings) -> str:
    """The pain.001 version for the caisse's bank (its BIC, then the BIC's first 8 letters)."""
    by_bank = {bic.upper(): schema for bic, schema in settings.sepa_schema_by_bank.items()}
    bic = settings.debtor_bic.upper()
    return by_bank.get(bic) or by_bank.get(bic[:8]) or settings.sepa_schema


def write_sepa(path: Path, *, run: SettlementRun, payouts: Sequence[Payout], settings: Settings) -> None:
    """One credit transfer per payout, executed the day after the run; nothing when none."""
    if not payouts:
        return
    from schwifty import IBAN
    from sepaxml import SepaTransfer

    schema = schema_for_bank(settings)
    config = {"name": settings.debtor_name, "IBAN": settings.debtor_iban, "BIC": settings.debtor_bic,
              "batch": True, "currency": "EUR"}
    sepa = SepaTransfer(config, schema=schema, clean=True)
    for payout in payouts:
        payment: dict[str, object] = {
            "name": payout.name, "IBAN": payout.iban, "amount": payout.amount_cents,
            "execution_date": run.run_date + timedelta(days=1),
            "description": f"Caisse alimentaire - reglement {run.id} du {run.run_date:%d/%m/%Y}",
            "endtoend_id": f"CAISSE-{run.id}-{payout.vendor_id}",
        }
        bic = IBAN(payout.iban).bic
        if bic is not None:
            payment["BIC"] = str(bic)
        sepa.add_payment(payment)
    document = sepa.export(validate=False, pretty_print=True)
    xsd(schema).validate(document.decode("utf-8"))  # raises when invalid
    path.write_bytes(document)


@lru_cache(maxsize=4)
def xsd(name: str) -> Any:
    """The XSD shipped with sepaxml, parsed once per process (parsing costs ~0.3 s): the same
    check as `export(validate=True)`, which parses it again on every call."""
    import xmlschema
    from sepaxml import validation

    return xmlschema.XMLSchema(str(Path(validation.__file__).parent / "schemas" / f"{name}.xsd"))
