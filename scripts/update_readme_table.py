"""Paste an experiment's compact table into README.md between its markers (<!-- <exp>-table:start/end -->).

python scripts/update_readme_table.py [--exp mini] [--source results/reports/mini_summary.md]

The source defaults to results/reports/<exp>_summary.md (written by scripts/mini_report.py), else
results/tables/<exp>.md.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", default="mini")
    ap.add_argument(
        "--source",
        type=Path,
        default=None,
        help="default: results/reports/<exp>_summary.md, else results/tables/<exp>.md",
    )
    args = ap.parse_args()
    summary = ROOT / "results" / "reports" / f"{args.exp}_summary.md"
    source = args.source or (summary if summary.is_file() else ROOT / "results" / "tables" / f"{args.exp}.md")
    table = source.read_text(encoding="utf-8").strip()
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    tag = re.escape(args.exp)
    pattern = re.compile(rf"(<!-- {tag}-table:start -->\n).*?(\n<!-- {tag}-table:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {args.exp}-table markers")
    readme.write_text(pattern.sub(lambda m: m.group(1) + table + m.group(2), text), encoding="utf-8")
    print(f"README.md: inserted {source}")


if __name__ == "__main__":
    main()
