"""House rules that hold for the whole package: no module over 500 lines."""

from __future__ import annotations

from .conftest import REPO

MAX_LINES = 500


def test_no_module_over_500_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in sorted((REPO / "bayeslora").rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them into cohesive modules): {long}"
