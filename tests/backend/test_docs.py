"""The developer docs keep up with the schema: every table is described in docs/backend.md."""

from pathlib import Path

from sqlmodel import SQLModel

import caisse.models  # noqa: F401  (registers the tables)

BACKEND_DOC = Path(__file__).resolve().parents[2] / "docs" / "backend.md"


def test_every_table_is_described_in_the_backend_doc() -> None:
    tables_section = BACKEND_DOC.read_text(encoding="utf-8").split("## Tables", 1)[1].split("\n## ", 1)[0]
    missing = [table for table in SQLModel.metadata.tables if f"| `{table}` |" not in tables_section]
    assert missing == []
