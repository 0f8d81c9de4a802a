"""What the data pipeline changes is said (issue 29): rows kept and dropped per split and why, rows
cut by a cap or truncated, the unknown-token rate of the prompts, the steps and the class tokens;
a run prints its folder before loading the model and its record's path at the end."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

from bayeslora.data import build_task
from bayeslora.models import tiny_tokenizer


def data_line(task, steps: int, batch_size: int) -> str:
    from bayeslora.data.report import data_line

    return data_line(task, steps, batch_size)


def _row(question: str, n_choices: int, answer: str = "A") -> dict:
    texts = ["Anchor", "Bell", "Book", "Box", "Coin"][:n_choices]  # words the tiny tokenizer knows
    return {"question": question, "choices": {"text": texts}, "answerKey": answer}


def _three_choice_dataset(tmp_path: Path, train_rows: list[dict]) -> OmegaConf:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    (tmp_path / "dev.jsonl").write_text(
        "".join(json.dumps(_row("Which is the key", 3)) + "\n" for _ in range(4))
    )
    return OmegaConf.create(
        {
            "name": "mine",
            "source": {
                "_target_": "bayeslora.data.sources.FileSource",
                "files": {"train": "train.jsonl", "validation": "dev.jsonl"},
                "data_dir": str(tmp_path),
            },
            "template": {
                "prompt": "{question} Choices: {choices} Answer:",
                "label": "answerKey",
                "label_map": {"A": 0, "B": 1, "C": 2},
                "choices": {"column": "choices.text", "other_counts": "skip"},
            },
            "classes": ["A", "B", "C"],
            "train_split": "train",
            "eval_splits": ["validation"],
        }
    )


def test_dropped_rows_are_counted_with_their_reason(tmp_path):
    rows = [_row("Which is the key", 3)] * 5 + [_row("Which is the key", 4)] * 3
    task = build_task(_three_choice_dataset(tmp_path, rows), tiny_tokenizer(), max_length=64)
    assert len(task.train) == 5
    report = task.report["train"]
    assert (report.rows, report.kept) == (8, 5)
    assert report.dropped == {"4 choices, dataset expects 3 (other_counts: skip)": 3}
    assert task.report["validation"].dropped == {}
    line = data_line(task, steps=20, batch_size=4)
    assert "train 5 of 8 rows (3 rows dropped: 4 choices, dataset expects 3 (other_counts: skip))" in line
    assert "validation 4 rows" in line
    assert "20 steps of batch 4" in line and "class tokens A='A' B='B' C='C'" in line


def test_several_reasons_share_their_tail():
    from bayeslora.data.pipeline import SplitReport
    from bayeslora.data.report import split_summary

    why = "{} choices, dataset expects 4 (other_counts: skip)"
    r = SplitReport(rows=2251, kept=2241, dropped={why.format(3): 6, why.format(5): 4})
    assert split_summary("train", r) == (
        "train 2241 of 2251 rows (10 rows dropped: 6 × 3 choices, 4 × 5 choices; dataset expects 4 "
        "(other_counts: skip))"
    )


def test_capped_and_truncated_rows_are_said(tmp_path):
    rows = [_row("Which " * 30, 3)] * 6
    cfg = _three_choice_dataset(tmp_path, rows)
    task = build_task(cfg, tiny_tokenizer(), max_length=16, max_train_examples=4, max_eval_examples=2)
    line = data_line(task, steps=3, batch_size=2)
    assert "train 4 of 6 rows (2 past trainer.max_train_examples=4; 4 truncated to max_length=16)" in line
    assert "validation 2 of 4 rows (2 past eval.max_examples=2" in line


def test_a_high_unknown_token_rate_is_a_warning(tmp_path, caplog):
    rows = [_row("zebra quokka axolotl narwhal pangolin wombat", 3)] * 4
    with caplog.at_level(logging.WARNING):
        task = build_task(_three_choice_dataset(tmp_path, rows), tiny_tokenizer(), max_length=64)
    assert task.report["train"].unk_tokens > 0.05 * task.report["train"].tokens
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "train" in warning.getMessage() and "unknown token" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_task(
            _three_choice_dataset(tmp_path, [_row("Which is the key", 3)] * 4),
            tiny_tokenizer(),
            max_length=64,
        )
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_run_says_its_folder_first_then_its_data_and_its_record_last(compose, tiny_overrides, caplog):
    from bayeslora.runner import run

    cfg = compose(tiny_overrides)
    with caplog.at_level(logging.INFO):
        run(cfg)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("bayeslora")]
    assert messages[0] == f"run folder: {cfg.run_dir}"
    data = next(m for m in messages if m.startswith("data: "))
    assert "train 64 rows" in data and "validation 32 rows" in data and "shifted 16 rows" in data
    assert "4 steps of batch 4" in data and "class tokens A=" in data
    assert messages[-1] == f"record: {Path(cfg.run_dir) / 'metrics.json'} (success)"
