"""A dataset from one YAML: templates written in ``conf/dataset/*.yaml`` (no Python).

The re-expressed benchmarks render exactly the built-in templates' prompts and labels on every row
of every local split (ARC-E and BoolQ as committed YAML files; ARC-C, OBQA and WinoGrande as the same
YAML with overrides); local JSONL and CSV files; one clear line per bad template, missing column,
unmapped label or multi-token class word; and a YAML-only dataset trains and evaluates end to end.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from bayeslora.data import build_task, load_examples
from bayeslora.data.templates import YamlTemplate, get_template
from bayeslora.errors import ConfigError, DataError, TokenizerError
from bayeslora.schema import validate

from .conftest import DATA_DIR, needs_data

MC = "Select one of the choices that answers the following question:"
SAME_ROWS = {  # case -> (YAML dataset + overrides, built-in dataset, splits)
    "arc_e": (["dataset=arc_e_yaml"], "arc_e", ["train", "validation", "test"]),
    "arc_c": (
        [
            "dataset=arc_e_yaml",
            "dataset.source.config=ARC-Challenge",
            "dataset.source.local_dir=ai2_arc/ARC-Challenge",
        ],
        "arc_c",
        ["train", "validation", "test"],
    ),
    "obqa": (
        [
            "dataset=arc_e_yaml",
            "dataset.source.local_dir=openbookqa/main",
            f"dataset.template.prompt='{MC} {{question_stem}} Choices: {{choices}} Answer:'",
        ],
        "obqa",
        ["train", "validation", "test"],
    ),
    "winogrande_s": (
        [
            "dataset=boolq_yaml",
            "dataset.source.local_dir=winogrande/winogrande_s",
            "dataset.classes=[A,B]",
            f"dataset.template.prompt='{MC} {{sentence}} Choices: A. {{option1}}. B {{option2}}. Answer:'",
            "dataset.template.label=answer",
            "~dataset.template.label_map",
            "+dataset.template.label_map={1:0,2:1}",
        ],
        "winogrande_s",
        ["train", "validation"],
    ),
    "boolq": (["dataset=boolq_yaml"], "boolq", ["train", "validation"]),
}


@needs_data
@pytest.mark.parametrize("case", list(SAME_ROWS))
def test_yaml_template_renders_the_builtin_prompts_and_labels_on_every_row(compose, case):
    overrides, builtin, splits = SAME_ROWS[case]
    data = f"paths.data_dir={DATA_DIR}"
    yaml_cfg, ref_cfg = compose([*overrides, data]), compose([f"dataset={builtin}", data])
    assert isinstance(OmegaConf.to_container(yaml_cfg.dataset.template), dict)
    assert list(yaml_cfg.dataset.classes) == list(ref_cfg.dataset.classes)
    validate(yaml_cfg)
    for split in splits:
        ours, theirs = load_examples(yaml_cfg.dataset, split), load_examples(ref_cfg.dataset, split)
        assert len(ours) == len(theirs) > 0, split
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert a == b, (split, i, a, b)


def _dataset(tmp_path, template: dict, classes, rows_by_split: dict[str, list[dict]], fmt: str = "jsonl"):
    """A dataset config over local files written here (one per split)."""
    files = {}
    for split, rows in rows_by_split.items():
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "csv":
            with path.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[split] = path.name
    return OmegaConf.create(
        {
            "name": "my_task",
            "source": {
                "_target_": "bayeslora.data.sources.FileSource",
                "files": files,
                "data_dir": str(tmp_path),
            },
            "template": template,
            "classes": classes,
            "train_split": "train",
            "eval_splits": ["validation"],
        }
    )


YESNO = {"prompt": "Q: {q} Answer:", "label": "a", "label_map": {"no": 0, "yes": 1}}
ROWS = [{"q": "is it", "a": "yes"}, {"q": "is it not", "a": "no"}, {"q": "really", "a": "yes"}]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_local_jsonl_and_csv_files(tmp_path, fmt):
    ds = _dataset(tmp_path, YESNO, ["False", "True"], {"train": ROWS, "validation": ROWS[:2]}, fmt)
    assert load_examples(ds, "train") == [
        ("Q: is it Answer:", 1),
        ("Q: is it not Answer:", 0),
        ("Q: really Answer:", 1),
    ]
    assert len(load_examples(ds, "validation")) == 2


def test_hub_layout_folder_may_hold_csv(tmp_path):
    from bayeslora.data.sources import HubSource

    folder = tmp_path / "my" / "task"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text("q,a\nis it,yes\n")
    assert HubSource("me/task", None, "my/task", str(tmp_path)).rows("train") == [{"q": "is it", "a": "yes"}]


def test_choices_rendering_letters_separator_and_capitalisation():
    spec = {
        "prompt": "{q} Options: {choices} =>",
        "label": "gold",
        "choices": {
            "column": ["o1", "o2", "o3"],
            "letters": ["(a)", "(b)", "(c)"],
            "format": "{letter} {text}",
            "separator": " | ",
            "capitalise": False,
        },
    }
    t = YamlTemplate(spec, "t", ["x", "y", "z"])
    row = {"q": "Pick", "o1": "red", "o2": "green.", "o3": "blue", "gold": 2}
    assert t(row) == ("Pick Options: (a) red | (b) green. | (c) blue =>", 2)
    spec["choices"]["capitalise"] = True
    assert (
        YamlTemplate(spec, "t", ["x", "y", "z"])(row)[0]
        == "Pick Options: (a) Red. | (b) Green. | (c) Blue. =>"
    )
    # labels without a label_map: an index (or its digits) or a class word
    assert t(row | {"gold": "1"})[1] == 1 and t(row | {"gold": "z"})[1] == 2


def test_missing_column_and_unmapped_label_name_the_dataset_the_row_and_the_problem(tmp_path):
    rows = [*ROWS, {"q": "maybe", "a": "perhaps"}]
    ds = _dataset(tmp_path, YESNO, ["False", "True"], {"train": rows, "validation": rows})
    with pytest.raises(
        DataError,
        match=r"dataset 'my_task', split 'train' .*train.jsonl\), row 3: label column 'a' has value 'perhaps', which label_map does not map",
    ) as e:
        load_examples(ds, "train")
    assert "\n" not in str(e.value)
    ds.template.prompt = "Q: {q} Context: {passage} Answer:"
    with pytest.raises(
        DataError, match=r"dataset 'my_task', split 'train' .*row 0: no column 'passage' .*the row has: q, a"
    ):
        load_examples(ds, "train")
    ds = _dataset(tmp_path, YESNO | {"label": "gold"}, ["False", "True"], {"train": ROWS})
    with pytest.raises(DataError, match=r"row 0: no label column 'gold'"):
        load_examples(ds, "train")
    mc = {"prompt": "{q} {choices}", "label": "a", "choices": {"column": "opts"}}
    ds = _dataset(tmp_path, mc, ["A", "B"], {"train": [{"q": "x", "opts": ["1", "2", "3"], "a": 0}]})
    with pytest.raises(
        DataError, match=r"row 0: 3 choices, but the dataset has 2 classes .*other_counts: skip"
    ):
        load_examples(ds, "train")


def test_class_word_that_is_not_one_token_names_the_dataset(tmp_path):
    from bayeslora.models import tiny_tokenizer

    ds = _dataset(tmp_path, YESNO, ["False", "Perhaps"], {"train": ROWS, "validation": ROWS})
    with pytest.raises(
        TokenizerError, match=r"dataset 'my_task': class word 'Perhaps' is not in the vocabulary"
    ):
        build_task(ds, tiny_tokenizer(), 64)


@pytest.mark.parametrize(
    "template,match",
    [
        ({"prompt": "{q}", "label": "a", "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"label": "a"}, r"\.prompt must be a non-empty format string"),
        ({"prompt": "{q", "label": "a"}, r"\.prompt is not a valid format string"),
        ({"prompt": "{} x", "label": "a"}, r"every \{\} must name a column"),
        # attribute / index access: {question.title} would render "<built-in method title ...>"
        (
            {"prompt": "{question.title} {passage}", "label": "a"},
            r"prompt: \{question\.title\} uses attribute or index access; every \{\} must name a column",
        ),
        ({"prompt": "{q.text}", "label": "a"}, r"prompt: \{q\.text\} uses attribute or index access"),
        ({"prompt": "{choices[text]}", "label": "a"}, r"prompt: \{choices\[text\]\} uses attribute or"),
        ({"prompt": "{q}"}, r"\.label must name the column"),
        (
            {"prompt": "{q}", "label": "a", "label_map": {"yes": 2}},
            r"label_map\['yes'\]=2: expected a class index 0..1",
        ),
        ({"prompt": "{q}", "label": "a", "choices": {"column": "c"}}, r"prompt must contain \{choices\}"),
        (
            {"prompt": "{q} {choices}", "label": "a", "choices": {"column": "c", "letters": ["A"]}},
            r"letters has 1 entries, the dataset 2 classes",
        ),
        (
            {"prompt": "{q} {choices}", "label": "a", "choices": {"column": "c", "format": "{n}"}},
            r"format must be a format string over \{letter\} and \{text\}",
        ),
        (
            {"prompt": "{q} {choices}", "label": "a", "choices": {"column": "c", "other_counts": "drop"}},
            r"other_counts must be error or skip",
        ),
    ],
)
def test_bad_templates_are_one_config_error_naming_the_dataset(compose, template, match):
    cfg = compose(["dataset=boolq_yaml"])
    with open_dict(cfg):
        cfg.dataset.template = template
    with pytest.raises(ConfigError, match=rf"dataset 'boolq_yaml': template.*{match}") as e:
        validate(cfg)
    assert "\n" not in str(e.value)


def test_digit_class_words_are_matched_before_class_indices(tmp_path):
    """With ``classes: ["1", "2"]`` a label "1" is the class word "1" (class 0), not index 1: both
    labels keep their own class, as digits in a CSV or as numbers in a JSONL file. A digit that is not
    a class word is still read as an index."""
    template = {"prompt": "Q: {q} Answer:", "label": "a"}
    rows = [{"q": "one", "a": "1"}, {"q": "two", "a": "2"}, {"q": "one", "a": 1}, {"q": "two", "a": 2}]
    ds = _dataset(tmp_path, template, ["1", "2"], {"train": rows})
    assert [label for _, label in load_examples(ds, "train")] == [0, 1, 0, 1]
    ds = _dataset(tmp_path, template, ["1", "2"], {"train": rows[:2]}, fmt="csv")
    assert [label for _, label in load_examples(ds, "train")] == [0, 1]
    words = YamlTemplate(template, "t", ["No", "Yes"])
    assert [words({"q": "x", "a": a})[1] for a in ("0", "1", 0, 1, "Yes")] == [0, 1, 0, 1, 1]


def test_builtin_template_names_still_work_and_unknown_names_are_refused():
    assert get_template("arc").__name__ == "arc"
    with pytest.raises(ConfigError, match=r"unknown prompt template 'nope'.*or a mapping"):
        get_template("nope")


def test_a_yaml_only_dataset_trains_and_evaluates(compose, tmp_path):
    """Local CSV rows, the YAML template, 3 AdamW steps on the tiny model, then bayeslora.evaluate
    on the trained adapter: the same MAP row."""
    from bayeslora.evaluate import evaluate_adapter
    from bayeslora.runner import run

    rng = np.random.default_rng(0)
    rows = [
        {"q": " ".join(rng.choice(list("abcdefgh"), 5)), "a": str(rng.choice(["yes", "no"]))}
        for _ in range(24)
    ]
    (tmp_path / "data").mkdir()
    ds = _dataset(
        tmp_path / "data", YESNO, ["False", "True"], {"train": rows[:16], "validation": rows[16:]}, "csv"
    )
    base = ["model=tiny", "debug=fast", f"paths.root={tmp_path}", "trainer.num_threads=1"]
    cfg = compose(
        [*base, "dataset=boolq_yaml", "trainer.max_steps=3", "method.predictives=[map,laplace_diag]"]
    )
    ecfg = compose(
        [
            *base,
            "dataset=boolq_yaml",
            f"adapter='{Path(cfg.run_dir) / 'adapter'}'",
            "predictive=[map,laplace_diag]",
        ],
        config_name="evaluate",
    )
    for c in (cfg, ecfg):
        with open_dict(c):
            c.dataset.source = ds.source
            c.dataset.template = ds.template
        validate(c)
    rec = run(cfg)
    assert (
        rec["status"] == "success"
        and rec["steps"] == 3
        and rec["n_train"] == 16
        and rec["n_eval"] == {"validation": 8}
    )
    assert rec["data_sources"]["train"]["source"].endswith("train.csv")
    erec = evaluate_adapter(ecfg)
    assert erec["metrics"]["map"] == rec["metrics"]["map"]
    a, b = np.load(Path(cfg.run_dir) / "preds.npz"), np.load(Path(ecfg.run_dir) / "preds.npz")
    np.testing.assert_array_equal(a["validation/laplace_diag"], b["validation/laplace_diag"])


@needs_data
def test_yaml_arc_e_trains_a_few_steps_on_real_rows(compose, tmp_path):
    from bayeslora.runner import run

    cfg = compose(
        [
            "model=tiny",
            "dataset=arc_e_yaml",
            "debug=fast",
            f"paths.data_dir={DATA_DIR}",
            f"paths.root={tmp_path}",
            "trainer.num_threads=1",
            "trainer.max_steps=2",
            "trainer.max_train_examples=16",
            "eval.max_examples=16",
            "method.predictives=[map]",
        ]
    )
    validate(cfg)
    rec = run(cfg)
    assert (
        rec["status"] == "success"
        and rec["dataset"] == "arc_e_yaml"
        and rec["dataset_label"] == "ARC-E (YAML)"
    )
    assert rec["n_train"] == 16 and rec["n_eval"] == {"validation": 16}
