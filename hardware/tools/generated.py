"""Write a generated file, or with --check say whether the committed one is up to date."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(target: Path, text: str, argv: list[str], *, module: str) -> int:
    if "--check" not in argv:
        target.write_text(text, encoding="utf-8")
        return 0
    if target.read_text(encoding="utf-8") == text:
        return 0
    print(f"{target.name} is out of date: run python -m {module}", file=sys.stderr)
    return 1
