"""scripts/learnability_probe.py: the report says, per model, which datasets it learns (the final
accuracy beats both baselines by 2 SE), from the cells themselves."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import learnability_probe  # noqa: E402


def test_the_summary_names_what_each_model_learns():
    report = json.loads((ROOT / "results" / "probes" / "learnability.json").read_text())
    cells = [c for c in report["cells"] if c["model"] == "smollm2_135m_bf16"]
    assert len(cells) >= 2
    learnt = copy.deepcopy(cells[0])
    learnt["model"], learnt["beats_acc_final"] = "mine", True
    other = copy.deepcopy(cells[1])
    other["model"], other["beats_acc_final"] = "mine", False
    lines = learnability_probe.summary([*cells, learnt, other])
    assert lines[0].startswith(f"smollm2_135m_bf16: learns none of {len(cells)} (0)")
    assert lines[1] == f"mine: learns {learnt['dataset']} of 2 (1); does not learn {other['dataset']}"
    md = learnability_probe.to_markdown({**report, "cells": [*cells, learnt, other]})
    assert f"- {lines[1]}" in md and md.count("| mine |") == 2
