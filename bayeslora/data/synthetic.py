"""An embedded synthetic 4-choice task for offline demos and fast tests.

Each question names a *cue* word; every cue points to one answer letter with its own reliability
(1.0 down to 0.55), otherwise the answer is one of the other letters at random. A model can learn
the cue -> letter map, but the label noise keeps the Bayes-optimal accuracy below 100 % (about 81 %)
and makes calibration measurable. Rows use the ARC schema, so they go through the same prompt path
as ARC. The ``shifted`` split draws fillers and choice texts from word lists never used in
training (covariate shift) while keeping the cue -> letter rule.
"""

from __future__ import annotations

import random

from bayeslora.errors import DataError

LETTERS = ("A", "B", "C", "D")
# cue -> (letter index, reliability)
CUES = {
    "red": (0, 1.0),
    "blue": (1, 1.0),
    "green": (2, 0.9),
    "gold": (3, 0.9),
    "pink": (0, 0.8),
    "gray": (1, 0.75),
    "teal": (2, 0.65),
    "plum": (3, 0.55),
}
FILLERS = ("small", "large", "old", "new", "quiet", "bright", "heavy", "light")
OBJECTS = ("box", "cup", "key", "lamp", "book", "coin", "shoe", "ring", "bell", "rope", "jar", "pen")
SHIFTED_FILLERS = ("ancient", "modern", "silent", "noisy")
SHIFTED_OBJECTS = ("violin", "anchor", "lantern", "compass", "saddle", "kettle", "barrel", "helmet")
SPLITS = {"train": 0, "validation": 1, "shifted": 2}


def vocabulary() -> list[str]:
    """Every word the generator can emit (the tiny tokenizer's vocabulary includes these)."""
    words = {"Which", "the", "is", "for", "mark"} | set(CUES) | set(FILLERS) | set(OBJECTS)
    words |= set(SHIFTED_FILLERS) | set(SHIFTED_OBJECTS)
    words |= {w.capitalize() for w in OBJECTS + SHIFTED_OBJECTS}
    return sorted(words)


def expected_accuracy() -> float:
    """Accuracy of the Bayes-optimal predictor (cues are drawn uniformly)."""
    return sum(r for _, r in CUES.values()) / len(CUES)


def make_rows(split: str, n: int, seed: int) -> list[dict]:
    if split not in SPLITS:
        raise DataError(f"synthetic task has splits {sorted(SPLITS)}, not {split!r}")
    rng = random.Random(seed * 10 + SPLITS[split])
    fillers, objects = (SHIFTED_FILLERS, SHIFTED_OBJECTS) if split == "shifted" else (FILLERS, OBJECTS)
    cues = sorted(CUES)
    rows = []
    for i in range(n):
        cue = rng.choice(cues)
        letter, reliability = CUES[cue]
        if rng.random() >= reliability:
            letter = rng.choice([k for k in range(4) if k != letter])
        texts = rng.sample(objects, 4)
        question = f"Which {rng.choice(fillers)} {rng.choice(objects)} is for the {cue} mark?"
        rows.append(
            {
                "id": f"synthetic-{split}-{i}",
                "question": question,
                "choices": {"text": texts, "label": list(LETTERS)},
                "answerKey": LETTERS[letter],
            }
        )
    return rows


class SyntheticSource:
    """Rows of the synthetic task; same interface as :class:`bayeslora.data.sources.HubSource`."""

    def __init__(self, n_train: int, n_validation: int, n_shifted: int, seed: int):
        self.sizes = {"train": n_train, "validation": n_validation, "shifted": n_shifted}
        self.seed = seed

    def describe(self, split: str) -> str:
        return f"synthetic task split {split!r}"

    def rows(self, split: str) -> list[dict]:
        if split in self.sizes and self.sizes[split] <= 0:
            raise DataError(f"split {split!r} of the synthetic task is empty (size {self.sizes[split]})")
        return make_rows(split, self.sizes.get(split, 0), self.seed)
