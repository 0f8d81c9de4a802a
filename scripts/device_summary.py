"""The summary of one ``scripts/device_check.sh`` run, from what it wrote under its output folder.

    python scripts/device_summary.py results/device --device "NVIDIA H200"

Reads ``stages.txt`` (each stage's exit status and wall time), ``bench/bench.json`` (step times,
ratios against AdamW, peak memory) and the paper-protocol runs' records and histories under
``results/runs/device/`` (validation accuracy / NLL every 1,000 steps, the final rows), and prints
Markdown with the device named in every heading. Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayeslora.records import HISTORY_FILE, RECORD_FILE  # noqa: E402

PAPER_STEP_S = 0.316  # Llama-2-7B, 8-bit, batch 4, RTX 6000 Ada (the IVON paper)
PAPER_IVON_OVERHEAD = 0.009


def stages(out: Path) -> list[str]:
    path = out / "stages.txt"
    if not path.is_file():
        return ["(no stages.txt: the script did not run)"]
    lines = ["| stage | exit status | wall s |", "|---|---|---|"]
    for line in path.read_text().splitlines():
        name, rc, wall = line.split()
        lines.append(f"| {name} | {rc.split('=')[1]} | {wall.split('=')[1]} |")
    return lines


def bench(out: Path) -> list[str]:
    path = out / "bench" / "bench.json"
    if not path.is_file():
        return ["(no bench/bench.json: the bench stage failed or did not run; see bench.log)"]
    b = json.loads(path.read_text())
    lines = [
        f"Machine: {b['machine']}, torch {b['torch']}.",
        "",
        "| model | method | median step s | × AdamW | peak memory MB |",
        "|---|---|---|---|---|",
    ]
    for model, m in b["models"].items():
        mem = ", ".join(f"{k} {v:.0f}" for k, v in m.get("memory", {}).items())
        for method, t in m["training"].items():
            lines.append(f"| {model} | {method} | {t['median_s']:.4f} | {t['ratio_vs_adamw']:.3f} | {mem} |")
    lines += [
        "",
        f"The paper (RTX 6000 Ada, Llama-2-7B 8-bit, batch 4): {PAPER_STEP_S} s per AdamW step, IVON "
        f"+{100 * PAPER_IVON_OVERHEAD:.1f} %.",
    ]
    return lines


def runs(out: Path) -> list[str]:
    records = sorted((out / "results" / "runs" / "device").glob(f"*/*/*/seed=*/{RECORD_FILE}"))
    if not records:
        return ["(no run records: the paper-protocol stages failed or did not finish; see their logs)"]
    lines = []
    for path in records:
        r = json.loads(path.read_text())
        hist = path.parent / HISTORY_FILE
        lines += [
            f"**{r['method']}** on {r['dataset']}, {r['model']}, seed {r['seed']}: status {r['status']}, "
            f"{r['steps']} steps, wall {r['provenance']['wall_s']:.0f} s on {r['provenance']['device']}.",
            "",
        ]
        if hist.is_file():
            h = pd.read_csv(hist)
            wide = h.pivot_table(index="step", columns="key", values="value")
            cols = [c for c in ("train/loss", "val/acc", "val/nll", "val/ece") if c in wide]
            val = wide[cols].dropna(subset=[c for c in cols if c.startswith("val/")] or cols)
            lines += ["| step | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            for step, row in val.iterrows():
                cells = ["—" if math.isnan(v) else f"{v:.4f}" for v in row.values]
                lines.append(f"| {int(step)} | " + " | ".join(cells) + " |")
            lines.append("")
        for row, m in (r.get("metrics") or {}).items():
            lines.append(
                f"- final {row}: acc {m['acc']:.4f}, NLL {m['nll']:.4f}, ECE {m['ece']:.4f}, Brier {m['brier']:.4f}"
            )
        lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--device", required=True, help="the device, named in every heading")
    a = ap.parse_args()
    d = a.device
    parts = [
        f"# Device check on {d}",
        "",
        f"## Stages ({d})",
        "",
        *stages(a.out),
        "",
        f"## AdamW vs IVON step, 8-bit 7B-shaped model ({d})",
        "",
        *bench(a.out),
        "",
        f"## Qwen2.5-Coder-0.5B on ARC-E at the paper's protocol ({d})",
        "",
        *runs(a.out),
    ]
    print("\n".join(parts))


if __name__ == "__main__":
    main()
