"""The one line a run prints after tokenising: what the pipeline kept of each split and why it left
rows out, the training steps and the tokens the class words read."""

from __future__ import annotations

from bayeslora.data.pipeline import SplitReport, TaskData


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _reasons(dropped: dict[str, int]) -> str:
    """One reason as it is; several that share their tail after the first comma, once:
    ``6 × 3 choices, 4 × 5 choices; dataset expects 4 (other_counts: skip)``."""
    if len(dropped) == 1:
        return next(iter(dropped))
    parts = [(why.split(", ", 1), n) for why, n in dropped.items()]
    tails = {p[1] for p, _ in parts if len(p) == 2}
    if len(tails) == 1 and all(len(p) == 2 for p, _ in parts):
        return ", ".join(f"{n} × {p[0]}" for p, n in parts) + f"; {tails.pop()}"
    return "; ".join(f"{n} × {why}" for why, n in dropped.items())


def split_summary(name: str, r: SplitReport) -> str:
    """``train 5 of 8 rows (3 rows dropped: 4 choices, dataset expects 3 (other_counts: skip))``."""
    notes = []
    n_dropped = sum(r.dropped.values())
    if n_dropped:
        notes.append(f"{_plural(n_dropped, 'row')} dropped: {_reasons(r.dropped)}")
    if r.capped:
        notes.append(f"{r.capped} past {r.cap_key}={r.kept}")
    if r.truncated:
        notes.append(f"{r.truncated} truncated to max_length={r.max_length}")
    counts = f"{r.kept} rows" if r.kept == r.rows else f"{r.kept} of {r.rows} rows"
    return f"{name} {counts}" + (f" ({'; '.join(notes)})" if notes else "")


def data_line(task: TaskData, steps: int, batch_size: int) -> str:
    """``data: train 2000 rows, validation 400 rows | 20 steps of batch 4 (0.04 epochs) | class tokens
    A='▁A' B='▁B'``: every split the run reads, what the run trains for, what it reads the classes at."""
    report = task.report or {}
    splits = ", ".join(split_summary(name, r) for name, r in report.items())
    if steps:
        epochs = steps * batch_size / max(1, len(task.train))
        training = f"{steps} steps of batch {batch_size} ({epochs:.2g} epochs)"
    else:
        training = "no training step (trainer.max_steps=0)"
    tokens = " ".join(f"{c}={t!r}" for c, t in zip(task.classes, task.class_tokens or []))
    return f"data: {splits} | {training} | class tokens {tokens}"
