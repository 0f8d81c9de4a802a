"""Prompts and labels from dataset rows: the paper code's templates, or one written in the YAML.

A template turns one row (Hugging Face column schema) into ``(prompt, label)`` or ``None`` when the
row is filtered out (ARC/OBQA questions that do not have exactly 4 choices).

``dataset.template`` is either the name of a built-in template (``arc``, ``obqa``, ``winogrande``,
``boolq``: the paper code's preprocessing, one function each) or a mapping, so that a new
multiple-choice or yes/no dataset needs one YAML file and no Python (:class:`YamlTemplate`)::

    template:
      prompt: "Answer the question with only True or False: {question} Context: {passage}"
      label: answer                       # the column holding the gold answer
      label_map: {"false": 0, "true": 1}  # optional: column value -> class index
    classes: ["False", "True"]            # the class words read at the answer position

* ``prompt`` is a Python format string over the row's columns (``{question}``); each field names a
  column, without attribute or index access (``{question.title}`` would render a method of the
  string, so it is refused). ``{choices}`` is the rendered choice list when ``choices`` is set (it
  shadows a column of that name).
* ``label`` names the column (or a list of columns: the first one a row has, e.g. BoolQ's
  ``[label, answer]`` across its two schemas). Without ``label_map`` the value must be a class index
  (``0 .. C-1``, an integer or its digits) or one of the class words, a class word first (with
  ``classes: ["1", "2"]``, ``"1"`` is class 0). ``label_map`` keys are the column's values as text
  (``"1"``, ``"A"``); booleans are ``true``/``false``.
* ``choices`` renders a column of choices for multiple-choice rows::

      choices:
        column: choices.text      # a list column (dotted path into nested columns), or a list of columns
        letters: null             # one letter per choice; null = the class words
        format: "{letter}. {text}"
        separator: " "
        capitalise: true          # the paper's rule: first letter upper-cased, a '.' appended if none
        other_counts: error       # a row with another number of choices than classes: error | skip

  ``other_counts: skip`` leaves such rows out, as the paper does for ARC and OBQA.

A bad template is a :class:`~bayeslora.errors.ConfigError` naming the dataset and the key; a row it
cannot render (a missing column, an unmapped label) is a :class:`~bayeslora.errors.DataError` that
:func:`bayeslora.data.pipeline.load_examples` prefixes with the dataset, the split and the row.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

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


CHOICE_KEYS = ("column", "letters", "format", "separator", "capitalise", "other_counts")
TEMPLATE_KEYS = ("prompt", "label", "label_map", "choices")


def label_key(value: Any) -> str:
    """A column value (or a ``label_map`` key) as text: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _column(row: Mapping, path: str) -> Any:
    """The value at a dotted column path (``choices.text``); KeyError names the missing part."""
    node: Any = row
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            columns = ", ".join(map(str, row)) if isinstance(row, Mapping) else ""
            raise DataError(f"no column {path!r} (the row has: {columns})")
        node = node[part]
    return node


class _Fields(dict):
    """The row's columns for ``str.format_map``, plus ``{choices}``; a missing one names itself."""

    def __missing__(self, key):
        raise DataError(
            f"no column {key!r} for the prompt's {{{key}}} (the row has: {', '.join(self.columns)})"
        )


class YamlTemplate:
    """A template written in the dataset's YAML (see the module docstring)."""

    def __init__(self, spec: Mapping, dataset: str = "?", classes: list[str] | None = None):
        spec = dict(spec)
        self.dataset = dataset
        self.classes = [str(c) for c in (classes or [])]
        where = f"dataset {dataset!r}: template"
        unknown = sorted(set(spec) - set(TEMPLATE_KEYS))
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {unknown}; it takes {', '.join(TEMPLATE_KEYS)}")
        self.prompt = spec.get("prompt")
        if not isinstance(self.prompt, str) or not self.prompt:
            raise ConfigError(f"{where}.prompt must be a non-empty format string over the row's columns")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.prompt) if f is not None]
        except ValueError as e:
            raise ConfigError(f"{where}.prompt is not a valid format string ({e})") from None
        if any(f == "" or f.isdigit() for f in fields):
            raise ConfigError(f"{where}.prompt: every {{}} must name a column, e.g. {{question}}")
        access = next((f for f in fields if "." in f or "[" in f), None)
        if access is not None:
            raise ConfigError(
                f"{where}.prompt: {{{access}}} uses attribute or index access; every {{}} must name a "
                "column of the row, e.g. {question}"
            )
        label = spec.get("label")
        self.label_columns = [label] if isinstance(label, str) else label
        if not (
            isinstance(self.label_columns, list)
            and self.label_columns
            and all(isinstance(c, str) and c for c in self.label_columns)
        ):
            raise ConfigError(
                f"{where}.label must name the column holding the gold answer (or a list of them)"
            )
        self.label_map: dict[str, int] | None = None
        if spec.get("label_map") is not None:
            lm = spec["label_map"]
            if not isinstance(lm, Mapping) or not lm:
                raise ConfigError(
                    f"{where}.label_map must be a non-empty mapping: column value -> class index"
                )
            self.label_map = {}
            for k, v in lm.items():
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < max(len(self.classes), 1):
                    raise ConfigError(
                        f"{where}.label_map[{k!r}]={v!r}: expected a class index 0..{len(self.classes) - 1}"
                    )
                self.label_map[label_key(k)] = v
        self.choices = None
        if spec.get("choices") is not None:
            self.choices = self._choices(spec["choices"], f"{where}.choices")
            if "choices" not in fields:
                raise ConfigError(f"{where}.prompt must contain {{choices}} where the rendered choices go")

    def _choices(self, c: Any, where: str) -> dict[str, Any]:
        if not isinstance(c, Mapping):
            raise ConfigError(f"{where} must be a mapping ({', '.join(CHOICE_KEYS)})")
        unknown = sorted(set(c) - set(CHOICE_KEYS))
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {unknown}; it takes {', '.join(CHOICE_KEYS)}")
        out = {
            "column": c.get("column"),
            "letters": c.get("letters"),
            "format": c.get("format", "{letter}. {text}"),
            "separator": c.get("separator", " "),
            "capitalise": c.get("capitalise", True),
            "other_counts": c.get("other_counts", "error"),
        }
        col = out["column"]
        if not (isinstance(col, str) and col) and not (
            isinstance(col, list) and col and all(isinstance(x, str) and x for x in col)
        ):
            raise ConfigError(f"{where}.column must name a list column (e.g. choices.text) or list columns")
        letters = out["letters"] if out["letters"] is not None else self.classes
        if not isinstance(letters, list) or not letters:
            raise ConfigError(f"{where}.letters must be a list (null = the class words)")
        out["letters"] = [str(x) for x in letters]
        if len(out["letters"]) != len(self.classes):
            raise ConfigError(
                f"{where}.letters has {len(letters)} entries, the dataset {len(self.classes)} classes"
            )
        try:
            fmt_fields = {f for _, f, _, _ in string.Formatter().parse(out["format"]) if f is not None}
        except (ValueError, AttributeError, TypeError):
            fmt_fields = None
        if fmt_fields is None or not fmt_fields <= {"letter", "text"} or "text" not in fmt_fields:
            raise ConfigError(f"{where}.format must be a format string over {{letter}} and {{text}}")
        if not isinstance(out["separator"], str) or not isinstance(out["capitalise"], bool):
            raise ConfigError(f"{where}.separator must be a string and .capitalise true or false")
        if out["other_counts"] not in ("error", "skip"):
            raise ConfigError(f"{where}.other_counts must be error or skip, not {out['other_counts']!r}")
        return out

    def _label(self, row: Mapping) -> int:
        column = next((c for c in self.label_columns if _has(row, c)), None)
        if column is None:
            names = " or ".join(repr(c) for c in self.label_columns)
            raise DataError(f"no label column {names} (the row has: {', '.join(map(str, row))})")
        value = _column(row, column)
        n = len(self.classes)
        if self.label_map is not None:
            key = label_key(value)
            if key not in self.label_map:
                raise DataError(
                    f"label column {column!r} has value {value!r}, which label_map does not map "
                    f"(it maps {', '.join(map(repr, self.label_map))})"
                )
            return self.label_map[key]
        if label_key(value) in self.classes:  # a class word first: with classes ["1", "2"], "1" is 0
            return self.classes.index(label_key(value))
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n:
            return value
        if isinstance(value, str) and value.strip().isdigit() and 0 <= int(value) < n:
            return int(value)
        raise DataError(
            f"label column {column!r} has value {value!r}: neither a class index 0..{n - 1} nor one of the "
            f"classes {self.classes}; add a label_map"
        )

    def _render_choices(self, row: Mapping) -> str | None:
        c = self.choices
        col = c["column"]
        texts = _column(row, col) if isinstance(col, str) else [_column(row, x) for x in col]
        if not isinstance(texts, list):
            raise DataError(f"choices column {col!r} is not a list (got {type(texts).__name__})")
        if len(texts) != len(c["letters"]):
            if c["other_counts"] == "skip":
                return None
            raise DataError(
                f"{len(texts)} choices, but the dataset has {len(c['letters'])} classes "
                f"(set template.choices.other_counts: skip to leave such rows out)"
            )
        parts = []
        for letter, text in zip(c["letters"], texts):
            text = str(text)
            parts.append(
                c["format"].format(letter=letter, text=_capitalise_choice(text) if c["capitalise"] else text)
            )
        return c["separator"].join(parts)

    def __call__(self, row: Mapping) -> tuple[str, int] | None:
        fields = _Fields(row)
        fields.columns = [str(k) for k in row]
        if self.choices is not None:
            rendered = self._render_choices(row)
            if rendered is None:
                return None
            fields["choices"] = rendered
        try:
            prompt = self.prompt.format_map(fields)
        except (IndexError, TypeError) as e:
            raise DataError(f"cannot render the prompt ({type(e).__name__}: {e})") from None
        return prompt, self._label(row)


def _has(row: Mapping, path: str) -> bool:
    try:
        _column(row, path)
    except DataError:
        return False
    return True


def get_template(
    spec: Any, dataset: str = "?", classes: list[str] | None = None
) -> Callable[[dict], tuple[str, int] | None]:
    """The template a dataset config names (a built-in's name) or writes (a mapping)."""
    if isinstance(spec, Mapping) or hasattr(spec, "items"):
        from omegaconf import OmegaConf

        if OmegaConf.is_config(spec):
            spec = OmegaConf.to_container(spec, resolve=True)
        return YamlTemplate(spec, dataset, classes)
    try:
        return TEMPLATES[spec]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown prompt template {spec!r}; known: {sorted(TEMPLATES)}, or a mapping (prompt, label, ...)"
        ) from None


def skip_reason(template: Callable, row: Mapping) -> str:
    """Why ``template`` left ``row`` out (it returned None), in a few words."""
    choices = getattr(template, "choices", None)
    try:
        if isinstance(template, YamlTemplate) and choices is not None:
            col = choices["column"]
            texts = _column(row, col) if isinstance(col, str) else [_column(row, x) for x in col]
            return f"{len(texts)} choices, dataset expects {len(choices['letters'])} (other_counts: skip)"
        if template in (arc, obqa):
            return f"{len(row['choices']['label'])} choices, template {template.__name__!r} takes 4"
    except (DataError, KeyError, TypeError):
        pass
    return "left out by the template"
