"""The paper code's prompts and preprocessing, one function per benchmark family.

Each template turns one row (Hugging Face column schema) into ``(prompt, label)`` or ``None`` when
the row is filtered out (ARC/OBQA questions that do not have exactly 4 choices).
"""

from __future__ import annotations

from collections.abc import Callable

from bayeslora.errors import ConfigError, DataError

MC_PREFIX = "Select one of the choices that answers the following question:"
LETTERS = ("A", "B", "C", "D")
_NUMERIC = {"1": "A", "2": "B", "3": "C", "4": "D"}


def _capitalise_choice(text: str) -> str:
    """First letter upper-cased and a trailing '.' added if there is none (paper preprocessing)."""
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _four_choice(row: dict, question: str) -> tuple[str, int] | None:
    choices = row["choices"]
    labels = [_NUMERIC.get(lab, lab) for lab in choices["label"]]
    if len(labels) != 4:
        return None
    answer = _NUMERIC.get(row["answerKey"], row["answerKey"])
    if labels != list(LETTERS) or answer not in LETTERS:
        raise DataError(f"unexpected choice labels {choices['label']} / answerKey {row['answerKey']!r}")
    rendered = " ".join(f"{lab}. {_capitalise_choice(t)}" for lab, t in zip(labels, choices["text"]))
    return f"{MC_PREFIX} {question} Choices: {rendered} Answer:", LETTERS.index(answer)


def arc(row: dict) -> tuple[str, int] | None:
    return _four_choice(row, row["question"])


def obqa(row: dict) -> tuple[str, int] | None:
    return _four_choice(row, row["question_stem"])


def winogrande(row: dict) -> tuple[str, int] | None:
    # Verbatim from the paper code, including "B" without a period and options not capitalised.
    prompt = f"{MC_PREFIX} {row['sentence']} Choices: A. {row['option1']}. B {row['option2']}. Answer:"
    if row["answer"] not in ("1", "2"):
        raise DataError(f"WinoGrande answer must be '1' or '2', got {row['answer']!r}")
    return prompt, int(row["answer"]) - 1


def boolq(row: dict) -> tuple[str, int] | None:
    """Both schemas: SuperGLUE (``label`` 0 = False, 1 = True; passage ``"{title} -- {passage}"``, as
    the paper's code loads it) and google/boolq (``answer`` bool; passage without the title)."""
    prompt = f"Answer the question with only True or False: {row['question']} Context: {row['passage']}"
    if "label" in row:
        if row["label"] not in (0, 1):
            raise DataError(f"BoolQ label must be 0 or 1, got {row['label']!r}")
        return prompt, int(row["label"])
    return prompt, int(bool(row["answer"]))


TEMPLATES: dict[str, Callable[[dict], tuple[str, int] | None]] = {
    "arc": arc,
    "obqa": obqa,
    "winogrande": winogrande,
    "boolq": boolq,
}


def get_template(name: str) -> Callable[[dict], tuple[str, int] | None]:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ConfigError(f"unknown prompt template {name!r}; known: {sorted(TEMPLATES)}") from None
