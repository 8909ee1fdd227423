"""The monthly claim to the State for its matching of contributions (docs/settlement.md, "The
monthly matching claim"), as a CSV (UTF-8 with a byte order mark, `;`, decimal commas, no cell
that runs as a formula: caisse.settlement.statements' writer) and a PDF (fpdf2, core fonts).

It lists the month's contributions from the register (reversed ones left out), their total, the
matching rate and the amount claimed (the total times the rate, rounded down, as
`fund.record_matching` posts it), and what the ledger holds for the month's matching already.
A contribution for a closed month is registered in the next open month (fund), so a claim sent
for a closed month stays true. Households appear by number only: the funder needs the amounts,
not who the members are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlmodel import Session, col

from caisse.config import Settings
from caisse.ledger.corrections import reversed_sql
from caisse.models import Contribution
from caisse.money import euros
from caisse.months import Month
from caisse.settlement.statements import SafeWriter


@dataclass(frozen=True, slots=True)
class ClaimLine:
    household_id: int
    reference: str
    recorded_on: date  # local day the caisse recorded it
    amount_cents: int


@dataclass(frozen=True, slots=True)
class MatchingClaim:
    month: str
    basis_points: int
    lines: list[ClaimLine]
    matching_posted_cents: int  # matching transfers of the month in the ledger

    @property
    def contributions_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    @property
    def matching_cents(self) -> int:
        return self.contributions_cents * self.basis_points // 10_000

    @property
    def rate(self) -> str:
        return f"{euros(self.basis_points)} %".replace(",00 %", " %")

    @property
    def stem(self) -> str:
        return f"demande-abondement-{self.month}"


def claim(session: Session, *, month: str, settings: Settings) -> MatchingClaim:
    period = str(Month.parse(month))
    zone = ZoneInfo(settings.settlement_timezone)
    rows = session.execute(
        select(col(Contribution.household_id), col(Contribution.reference), col(Contribution.created_at), col(Contribution.amount_cents))
        .where(col(Contribution.month) == period, text(f"NOT {reversed_sql('contribution.reference')}"))
        .order_by(col(Contribution.created_at), col(Contribution.id))).all()
    lines = [ClaimLine(int(h), _shown(reference), _local_day(created, zone), int(cents))
             for h, reference, created, cents in rows]
    posted = int(session.execute(text("SELECT COALESCE(SUM(amount_cents), 0) FROM ledger_transfer"
                                      " WHERE kind = 'matching' AND reference LIKE :p"), {"p": f"matching:{period}:%"}).scalar_one())
    return MatchingClaim(month=period, basis_points=settings.matching_basis_points, lines=lines, matching_posted_cents=posted)


def _shown(reference: str) -> str:
    """The receipt or platform reference staff typed, without the ledger's namespace."""
    for prefix in ("contribution:import:", "contribution:"):
        if reference.startswith(prefix):
            return reference[len(prefix):]
    return reference


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone).date()


def _title(result: MatchingClaim) -> str:
    return f"Demande d'abondement de l'État : cotisations de {result.month}"


def csv_bytes(result: MatchingClaim, *, caisse_name: str) -> bytes:
    handle = io.StringIO(newline="")
    writer = SafeWriter(handle)
    writer.writerow([_title(result), caisse_name])
    writer.writerow(["foyer", "référence", "enregistrée le", "cotisation (EUR)"])
    writer.writerows([line.household_id, line.reference, f"{line.recorded_on:%d/%m/%Y}", euros(line.amount_cents)]
                     for line in result.lines)
    writer.writerow(["total des cotisations", len(result.lines), "", euros(result.contributions_cents)])
    writer.writerow([f"abondement demandé ({result.rate} des cotisations)", "", "", euros(result.matching_cents)])
    writer.writerow(["abondement déjà enregistré au grand livre", "", "", euros(result.matching_posted_cents)])
    return ("\ufeff" + handle.getvalue()).encode("utf-8")


_TOP_MM, _BOTTOM_MM, _LINE_MM, _LEFT_MM = 20.0, 280.0, 4.5, 15.0
_HEADER = f"{'Foyer':>7}  {'Référence':<40}{'Enregistrée le':<16}{'Cotisation (EUR)':>17}"


def pdf_bytes(result: MatchingClaim, *, caisse_name: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "cp1252"
    pdf.set_auto_page_break(False)
    pdf.set_title(_latin(_title(result)))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=13)
    pdf.text(_LEFT_MM, _TOP_MM, _latin(_title(result)))
    pdf.set_font("Helvetica", size=10)
    y = _TOP_MM
    for value in (caisse_name, f"{len(result.lines)} cotisation(s), taux d'abondement {result.rate}"):
        y += 6
        pdf.text(_LEFT_MM, y, _latin(value))
    pdf.set_font("Courier", size=9)
    y += 10
    pdf.text(_LEFT_MM, y, _latin(_HEADER))
    for line in result.lines:
        y += _LINE_MM
        if y > _BOTTOM_MM:
            pdf.add_page()
            y = _TOP_MM
            pdf.text(_LEFT_MM, y, _latin(_HEADER))
            y += _LINE_MM
        pdf.text(_LEFT_MM, y, _latin(f"{line.household_id:>7}  {line.reference[:38]:<40}{line.recorded_on:%d/%m/%Y}"
                                     f"{'':<6}{euros(line.amount_cents):>17}"))
    if y > _BOTTOM_MM - 4 * _LINE_MM:
        pdf.add_page()
        y = _TOP_MM
    pdf.set_font("Courier", style="B", size=9)
    for label, cents in ((f"Total des cotisations ({len(result.lines)})", result.contributions_cents),
                         (f"Abondement demandé ({result.rate})", result.matching_cents)):
        y += _LINE_MM * 1.5
        pdf.text(_LEFT_MM, y, _latin(f"{label:<63}{euros(cents):>17}"))
    return bytes(pdf.output())


def _latin(value: str) -> str:
    return value.encode("cp1252", "replace").decode("cp1252")


def write(result: MatchingClaim, folder: Path, *, caisse_name: str) -> tuple[Path, Path]:
    """The claim's CSV and PDF in `folder` (created); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, pdf_path = folder / f"{result.stem}.csv", folder / f"{result.stem}.pdf"
    csv_path.write_bytes(csv_bytes(result, caisse_name=caisse_name))
    pdf_path.write_bytes(pdf_bytes(result, caisse_name=caisse_name))
    return csv_path, pdf_path
