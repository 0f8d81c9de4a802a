"""Data pipeline tests: local benchmark copies, prompt templates, tokenisation, batching, errors,
and the synthetic task."""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from bayeslora.config import compose_config
from bayeslora.data import synthetic
from bayeslora.data.pipeline import (
    EncodedSplit,
    build_task,
    class_token_ids,
    collate,
    encode_prompts,
    eval_batches,
    load_examples,
    prepare_tokenizer,
    train_batches,
)
from bayeslora.data.templates import arc
from bayeslora.errors import DataError, TokenizerError
from bayeslora.models import tiny_tokenizer

from .conftest import DATA_DIR as DATA
from .conftest import LLAMA_TOKENIZER as LLAMA_DIR
from .conftest import needs_data, require
from .conftest import needs_models as needs_llama

PREFIX = "Select one of the choices that answers the following question:"

# dataset config -> (local folder, family)
DATASETS = {
    "arc_c": ("ai2_arc/ARC-Challenge", "arc"),
    "arc_e": ("ai2_arc/ARC-Easy", "arc"),
    "obqa": ("openbookqa/main", "obqa"),
    "winogrande_s": ("winogrande/winogrande_s", "winogrande"),
    "winogrande_m": ("winogrande/winogrande_m", "winogrande"),
    "boolq": ("boolq", "boolq"),
}

# Measured example counts after the 4-choice filter: dataset -> (train, validation).
COUNTS = {
    "arc_c": (1117, 295),
    "arc_e": (2241, 567),
    "obqa": (4957, 500),
    "winogrande_s": (640, 1267),
    "winogrande_m": (2558, 1267),
    "boolq": (9427, 3270),
}


def dataset_cfg(name: str, data_dir: Path | str = DATA):
    return compose_config([f"dataset={name}", f"paths.data_dir={data_dir}"]).dataset


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def expected_labels(family: str, rows: list[dict]) -> list[int]:
    """Labels computed directly from the raw rows (independent of the templates module)."""
    letter = {"A": 0, "B": 1, "C": 2, "D": 3, "1": 0, "2": 1, "3": 2, "4": 3}
    if family in ("arc", "obqa"):
        return [letter[r["answerKey"]] for r in rows if len(r["choices"]["text"]) == 4]
    if family == "winogrande":
        return [{"1": 0, "2": 1}[r["answer"]] for r in rows]
    return [1 if r["answer"] is True else 0 for r in rows]


def find_row(rel: str, row_id: str) -> dict:
    return next(r for r in read_jsonl(DATA / rel) if r["id"] == row_id)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def arc_row(row_id: str, n_choices: int, labels=None, answer="A") -> dict:
    labels = labels or list("ABCDE")[:n_choices]
    return {
        "id": row_id,
        "question": f"Question {row_id}?",
        "choices": {"text": [f"choice {k}" for k in range(n_choices)], "label": labels},
        "answerKey": answer,
    }


@pytest.fixture(scope="module")
def llama_tok():
    require(LLAMA_DIR, "BAYESLORA_MODELS_DIR")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(str(LLAMA_DIR)))


# ---------------------------------------------------------------------------------------------
# Local copies: counts, filter, labels
# ---------------------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize(
    "name, split, expected",
    [(name, split, n) for name, ns in COUNTS.items() for split, n in zip(("train", "validation"), ns)],
)
def test_example_counts_and_labels(name, split, expected):
    rel, family = DATASETS[name]
    cfg = dataset_cfg(name)
    assert cfg.source.data_dir == str(DATA)
    examples = load_examples(cfg, split)
    assert len(examples) == expected

    # the filter, counted directly from the JSONL
    rows = read_jsonl(DATA / rel / f"{split}.jsonl")
    if family in ("arc", "obqa"):
        assert sum(len(r["choices"]["text"]) == 4 for r in rows) == expected
    else:
        assert len(rows) == expected
    assert [lab for _, lab in examples] == expected_labels(family, rows)
    assert all(isinstance(p, str) and p for p, _ in examples)


@needs_data
def test_arc_filter_drops_the_3_and_5_choice_rows():
    rows = read_jsonl(DATA / "ai2_arc/ARC-Challenge/validation.jsonl")
    odd = {r["id"]: r for r in rows if len(r["choices"]["text"]) != 4}
    # the raw file has 299 rows; 3 have 3 choices and 1 has 5 choices
    assert len(rows) == 299
    assert sorted(len(r["choices"]["text"]) for r in odd.values()) == [3, 3, 3, 5]
    three, five = odd["NYSEDREGENTS_2014_4_4"], odd["TIMSS_2003_8_pg29"]
    assert arc(three) is None and arc(five) is None
    prompts = [p for p, _ in load_examples(dataset_cfg("arc_c"), "validation")]
    assert not any(three["question"] in p for p in prompts)
    assert not any(five["question"] in p for p in prompts)


def test_filter_on_a_local_folder(tmp_path):
    rows = [
        arc_row("keep-letters", 4, answer="C"),
        arc_row("drop-3", 3),
        arc_row("drop-5", 5, answer="E"),
        arc_row("keep-numeric", 4, labels=["1", "2", "3", "4"], answer="4"),
    ]
    write_jsonl(tmp_path / "ai2_arc/ARC-Challenge/validation.jsonl", rows)
    examples = load_examples(dataset_cfg("arc_c", tmp_path), "validation")
    assert [lab for _, lab in examples] == [2, 3]
    assert "Question keep-letters?" in examples[0][0]
    assert "Question keep-numeric?" in examples[1][0]
    assert examples[1][0].endswith("Choices: A. Choice 0. B. Choice 1. C. Choice 2. D. Choice 3. Answer:")


@needs_data
def test_data_dir_from_environment(monkeypatch):
    monkeypatch.setenv("BAYESLORA_DATA_DIR", str(DATA))
    cfg = compose_config(["dataset=winogrande_s"]).dataset
    assert cfg.source.data_dir == str(DATA)
    assert len(load_examples(cfg, "validation")) == 1267


# ---------------------------------------------------------------------------------------------
# Exact prompts of known rows (expected strings written from the template spec)
# ---------------------------------------------------------------------------------------------


@needs_data
def test_prompt_arc_c_first_validation_row():
    examples = load_examples(dataset_cfg("arc_c"), "validation")
    raw = read_jsonl(DATA / "ai2_arc/ARC-Challenge/validation.jsonl")[0]
    assert raw["id"] == "Mercury_SC_407695" and raw["answerKey"] == "D"
    expected = (
        "Select one of the choices that answers the following question: Juan and LaKeisha roll a few "
        "objects down a ramp. They want to see which object rolls the farthest. What should they do so "
        "they can repeat their investigation? Choices: A. Put the objects in groups. B. Change the height "
        "of the ramp. C. Choose different objects to roll. D. Record the details of the investigation. "
        "Answer:"
    )
    assert examples[0] == (expected, 3)


@needs_data
def test_prompt_arc_numeric_labels():
    # line 98 of the validation file: labels "1".."4", answerKey "1"
    row = find_row("ai2_arc/ARC-Challenge/validation.jsonl", "NYSEDREGENTS_2014_8_38")
    assert row["choices"]["label"] == ["1", "2", "3", "4"] and row["answerKey"] == "1"
    expected = (
        "Select one of the choices that answers the following question: A substance in the solid phase "
        "(state) of matter has Choices: A. A definite shape and a definite volume. B. A definite shape, "
        "but no definite volume. C. No definite shape, but a definite volume. D. No definite shape and "
        "no definite volume. Answer:"
    )
    assert arc(row) == (expected, 0)
    assert (expected, 0) in load_examples(dataset_cfg("arc_c"), "validation")
    # another numeric row, answerKey "2" -> B -> 1
    row2 = find_row("ai2_arc/ARC-Challenge/validation.jsonl", "NYSEDREGENTS_2014_8_20")
    assert row2["answerKey"] == "2"
    prompt2, label2 = arc(row2)
    assert label2 == 1
    assert " Choices: A. Greater than the total mass of the products. B. Equal to the total" in prompt2


@needs_data
def test_prompt_obqa_first_validation_row():
    examples = load_examples(dataset_cfg("obqa"), "validation")
    expected = (
        "Select one of the choices that answers the following question: Frilled sharks and angler fish "
        "live far beneath the surface of the ocean, which is why they are known as Choices: "
        "A. Deep sea animals. B. Fish. C. Long Sea Fish. D. Far Sea Animals. Answer:"
    )
    assert examples[0] == (expected, 0)


@needs_data
def test_prompt_winogrande_first_validation_row():
    examples = load_examples(dataset_cfg("winogrande_s"), "validation")
    expected = (
        "Select one of the choices that answers the following question: Sarah was a much better surgeon "
        "than Maria so _ always got the easier cases. Choices: A. Sarah. B Maria. Answer:"
    )
    assert examples[0] == (expected, 1)  # answer "2" -> 1


@needs_data
def test_prompt_boolq_validation_is_the_titled_superglue_form():
    """Validation rows come from super_glue/boolq (the paper's loader): "{title} -- {passage}"."""
    examples = load_examples(dataset_cfg("boolq"), "validation")
    titled = read_jsonl(DATA / "super_glue/boolq/validation.jsonl")
    untitled = read_jsonl(DATA / "boolq/validation.jsonl")
    assert len(examples) == len(titled) == len(untitled) == 3270
    raw = titled[0]
    assert raw["label"] == 0 and raw["passage"] == "Ethanol fuel -- " + untitled[0]["passage"]
    prompt, label = examples[0]
    assert prompt == (
        "Answer the question with only True or False: does ethanol take more energy make that produces "
        "Context: Ethanol fuel -- All biomass goes through at least some of these steps:"
        + untitled[0]["passage"][len("All biomass goes through at least some of these steps:") :]
    )
    assert label == 0
    # every row: the titled passage ends with the untitled one, and the labels agree with google/boolq
    for (prompt, label), t, u in zip(examples, titled, untitled):
        assert t["passage"].endswith(" -- " + u["passage"]) and prompt.endswith(t["passage"])
        assert label == t["label"] == int(u["answer"])
    assert {lab for _, lab in examples} == {0, 1}


@needs_data
def test_boolq_train_offline_is_the_untitled_form_and_says_so():
    from bayeslora.utils.instantiate import instantiate

    src = instantiate(dataset_cfg("boolq").source)
    assert src.provenance("validation")["form"] == "titled (SuperGLUE)"
    assert src.provenance("train")["form"] == "untitled (google/boolq)"
    assert src.provenance("train")["source"].endswith("boolq/train.jsonl")
    train = load_examples(dataset_cfg("boolq"), "train")
    raw = read_jsonl(DATA / "boolq/train.jsonl")[0]
    assert train[0] == (
        f"Answer the question with only True or False: {raw['question']} Context: {raw['passage']}",
        int(raw["answer"]),
    )


def test_boolq_hub_source_is_superglue():
    cfg = dataset_cfg("boolq")
    assert (cfg.source.path, cfg.source.config) == ("aps/super_glue", "boolq")


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


@needs_llama
def test_llama_class_token_ids(llama_tok):
    assert class_token_ids(llama_tok, ["A", "B", "C", "D"]) == [319, 350, 315, 360]
    assert class_token_ids(llama_tok, ["False", "True"]) == [7700, 5852]
    assert llama_tok.convert_ids_to_tokens([319, 350, 315, 360, 7700, 5852]) == [
        "▁A",
        "▁B",
        "▁C",
        "▁D",
        "▁False",
        "▁True",
    ]


@needs_llama
def test_prepare_tokenizer_llama():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(LLAMA_DIR))
    assert tok.pad_token_id is None  # precondition: Llama-2 has no pad token
    out = prepare_tokenizer(tok)
    assert out is tok
    assert tok.padding_side == "left"
    assert tok.truncation_side == "right"
    assert tok.bos_token_id == 1
    assert tok.pad_token_id == tok.bos_token_id == 1
    assert tok.pad_token == tok.bos_token == "<s>"


def test_prepare_tokenizer_tiny():
    tok = prepare_tokenizer(tiny_tokenizer())
    assert tok.padding_side == "left"
    assert tok.pad_token_id == tok.bos_token_id == tok.convert_tokens_to_ids("<s>")


@needs_data
@needs_llama
def test_encode_prompts_truncates_on_the_right(llama_tok):
    examples = load_examples(dataset_cfg("boolq"), "validation")
    longest = max(range(len(examples)), key=lambda i: len(examples[i][0]))
    prompt, label = examples[longest]
    full = llama_tok(prompt)["input_ids"]
    assert len(full) > 320
    enc = encode_prompts(llama_tok, "validation", [examples[0], (prompt, label)], max_length=320)
    assert len(enc) == 2
    ids = enc.input_ids[1]
    assert len(ids) == 320
    assert ids == full[:320]
    assert ids[0] == llama_tok.bos_token_id
    # the kept beginning is the instruction and the question
    head = llama_tok.decode(ids[1:12])
    assert head.startswith("Answer the question with only True or False:")
    assert enc.labels.dtype == np.int64 and enc.labels.tolist() == [examples[0][1], label]
    assert enc.prompts == [examples[0][0], prompt]


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------


def test_collate_left_pads_to_multiple_of_8():
    seqs = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12], [5]]
    out = collate(seqs, pad_id=0)
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == mask.shape == (3, 16)  # longest 9 -> 16
    assert ids.dtype == mask.dtype == torch.long
    assert ids[0].tolist() == [0] * 13 + [1, 2, 3]
    assert ids[1].tolist() == [0] * 7 + [4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert ids[2].tolist() == [0] * 15 + [5]
    assert mask[0].tolist() == [0] * 13 + [1] * 3
    assert mask[1].tolist() == [0] * 7 + [1] * 9
    assert mask[2].tolist() == [0] * 15 + [1]


def test_collate_lengths_and_pad_id():
    assert collate([[7] * 8], pad_id=3)["input_ids"].shape == (1, 8)  # exact multiple: unchanged
    out = collate([[7, 7], [7] * 9], pad_id=3, multiple=1)
    assert out["input_ids"].shape == (2, 9)
    assert out["input_ids"][0].tolist() == [3] * 7 + [7, 7]
    assert out["attention_mask"].sum(dim=1).tolist() == [2, 9]
    assert collate([[1] * 17], pad_id=0)["input_ids"].shape == (1, 24)


def toy_split(n: int = 37) -> EncodedSplit:
    # example i is [100 + i] repeated (1 + i % 7) times, so every example is identifiable
    ids = [[100 + i] * (1 + i % 7) for i in range(n)]
    return EncodedSplit("toy", ids, np.arange(n, dtype=np.int64) % 4, [f"p{i}" for i in range(n)])


def batch_indices(batch) -> list[int]:
    """Example index of every row (from the unique token id), checking padding and labels on the way."""
    out = []
    for row, mask, lab in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        real = row[mask.bool()].tolist()
        assert len(set(real)) == 1
        i = real[0] - 100
        assert len(real) == 1 + i % 7
        assert row[~mask.bool()].eq(0).all()
        assert int(lab) == i % 4
        out.append(i)
    return out


def test_eval_batches_cover_every_index_once():
    split = toy_split()
    seen = []
    for idx, batch in eval_batches(split, batch_size=5, pad_id=0):
        assert batch["input_ids"].shape[1] % 8 == 0
        assert batch_indices(batch) == list(idx)
        seen.extend(int(i) for i in idx)
    assert sorted(seen) == list(range(len(split)))
    assert len(seen) == len(split)


def take(it, k):
    return [next(it) for _ in range(k)]


def test_train_batches_deterministic_and_resumable():
    split = toy_split()
    bs = 5
    per_epoch = len(split) // bs  # 7 batches, 2 examples dropped per epoch
    a = [batch_indices(b) for b in take(train_batches(split, bs, seed=3, pad_id=0), 20)]
    b = [batch_indices(b) for b in take(train_batches(split, bs, seed=3, pad_id=0), 20)]
    c = [batch_indices(b) for b in take(train_batches(split, bs, seed=4, pad_id=0), 20)]
    assert a == b
    assert a != c
    assert all(len(x) == bs for x in a)
    # within an epoch no example repeats, and consecutive epochs are shuffled differently
    epoch0 = sum(a[:per_epoch], [])
    epoch1 = sum(a[per_epoch : 2 * per_epoch], [])
    assert len(set(epoch0)) == len(epoch0) == per_epoch * bs
    assert len(set(epoch1)) == len(epoch1)
    assert epoch0 != epoch1
    # start_step=k gives the same batches as skipping k (also across the epoch boundary)
    for k in (1, 3, per_epoch, per_epoch + 2, 12):
        resumed = [
            batch_indices(x) for x in take(train_batches(split, bs, seed=3, pad_id=0, start_step=k), 5)
        ]
        assert resumed == a[k : k + 5]
    # the tensors too, not just the indices
    full = take(train_batches(split, bs, seed=3, pad_id=0), 4)
    resumed = take(train_batches(split, bs, seed=3, pad_id=0, start_step=3), 1)[0]
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(full[3][key], resumed[key])


def test_train_batches_rejects_split_smaller_than_batch():
    with pytest.raises(DataError, match="fewer than batch size"):
        next(train_batches(toy_split(3), batch_size=4, seed=0, pad_id=0))


def test_build_task_synthetic_tiny():
    cfg = compose_config(
        [
            "dataset=synthetic",
            "dataset.source.n_train=40",
            "dataset.source.n_validation=12",
            "dataset.source.n_shifted=9",
        ]
    ).dataset
    tok = tiny_tokenizer()
    task = build_task(cfg, tok, max_length=64, max_eval_examples=10)
    assert len(task.train) == 40
    assert {k: len(v) for k, v in task.evals.items()} == {"validation": 10, "shifted": 9}
    assert task.classes == ["A", "B", "C", "D"]
    assert task.class_ids == tok.convert_tokens_to_ids(["A", "B", "C", "D"])
    assert task.pad_id == tok.bos_token_id
    unk = tok.unk_token_id
    assert not any(unk in ids for ids in task.train.input_ids)  # the tiny vocabulary covers the task


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_missing_data_file(tmp_path):
    (tmp_path / "ai2_arc").mkdir()
    with pytest.raises(DataError, match="missing data file") as e:
        load_examples(dataset_cfg("arc_c", tmp_path), "validation")
    assert str(tmp_path / "ai2_arc/ARC-Challenge/validation.jsonl") in str(e.value)


def test_missing_data_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as e:
        load_examples(dataset_cfg("boolq", missing), "train")
    assert str(missing) in str(e.value)


def test_empty_split(tmp_path):
    path = tmp_path / "winogrande/winogrande_s/validation.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty") as e:
        load_examples(dataset_cfg("winogrande_s", tmp_path), "validation")
    assert "'validation'" in str(e.value) and str(path) in str(e.value)
    path.write_text("\n  \n", encoding="utf-8")  # blank lines only: still empty
    with pytest.raises(DataError, match="empty"):
        load_examples(dataset_cfg("winogrande_s", tmp_path), "validation")


def test_split_with_no_usable_examples(tmp_path):
    write_jsonl(tmp_path / "ai2_arc/ARC-Easy/train.jsonl", [arc_row("a", 3), arc_row("b", 5)])
    with pytest.raises(DataError, match="no usable examples"):
        load_examples(dataset_cfg("arc_e", tmp_path), "train")


def test_invalid_json_line(tmp_path):
    path = tmp_path / "boolq/train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"question": "q", "answer": true, "passage": "p"}\n{not json\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl:2: not valid JSON"):
        load_examples(dataset_cfg("boolq", tmp_path), "train")


def test_class_word_not_single_token_tiny():
    tok = tiny_tokenizer()
    assert class_token_ids(tok, ["A", "B"]) == tok.convert_tokens_to_ids(["A", "B"])
    # "Maybe" is not in the tiny vocabulary: it must not be silently mapped to <unk>
    with pytest.raises(TokenizerError) as e:
        class_token_ids(tok, ["True", "Maybe"])
    msg = str(e.value)
    assert "Maybe" in msg and "bayeslora-tiny" in msg


@needs_llama
def test_class_word_not_single_token_llama(llama_tok):
    with pytest.raises(TokenizerError) as e:
        class_token_ids(llama_tok, ["A", "xyzzyq"])
    msg = str(e.value)
    assert "xyzzyq" in msg and str(LLAMA_DIR) in msg


def test_class_words_sharing_a_token():
    with pytest.raises(TokenizerError, match="share"):
        class_token_ids(tiny_tokenizer(), ["A", "A"])


# ---------------------------------------------------------------------------------------------
# Synthetic task
# ---------------------------------------------------------------------------------------------

CUE_RE = re.compile(r"^Which (\w+) (\w+) is for the (\w+) mark\?$")


def test_synthetic_deterministic_and_splits_differ():
    a = synthetic.make_rows("train", 200, seed=5)
    assert a == synthetic.make_rows("train", 200, seed=5)
    assert a != synthetic.make_rows("train", 200, seed=6)
    val = synthetic.make_rows("validation", 200, seed=5)
    shifted = synthetic.make_rows("shifted", 200, seed=5)
    key = [(r["question"], r["choices"]["text"], r["answerKey"]) for r in a]
    assert key != [(r["question"], r["choices"]["text"], r["answerKey"]) for r in val]
    assert key != [(r["question"], r["choices"]["text"], r["answerKey"]) for r in shifted]
    # a prefix of a longer draw is the shorter draw
    assert synthetic.make_rows("validation", 50, seed=5) == val[:50]


def test_synthetic_rows_follow_arc_schema():
    for split in ("train", "validation", "shifted"):
        rows = synthetic.make_rows(split, 300, seed=1)
        for i, r in enumerate(rows):
            assert set(r) == {"id", "question", "choices", "answerKey"}
            assert r["id"] == f"synthetic-{split}-{i}"
            assert r["choices"]["label"] == ["A", "B", "C", "D"]
            texts = r["choices"]["text"]
            assert len(texts) == 4 and len(set(texts)) == 4
            assert r["answerKey"] in ("A", "B", "C", "D")
            assert CUE_RE.match(r["question"]), r["question"]
            prompt, label = arc(r)
            assert label == "ABCD".index(r["answerKey"])
            assert prompt.startswith(f"{PREFIX} {r['question']} Choices: A. {texts[0].capitalize()}.")
        assert {r["answerKey"] for r in rows} == {"A", "B", "C", "D"}


def test_synthetic_shifted_uses_unseen_words():
    train = synthetic.make_rows("train", 2000, seed=2)
    shifted = synthetic.make_rows("shifted", 500, seed=2)
    train_texts = {t for r in train for t in r["choices"]["text"]}
    shifted_texts = {t for r in shifted for t in r["choices"]["text"]}
    assert shifted_texts and train_texts.isdisjoint(shifted_texts)
    train_words = {w for r in train for w in CUE_RE.match(r["question"]).groups()[:2]}
    shifted_words = {w for r in shifted for w in CUE_RE.match(r["question"]).groups()[:2]}
    assert train_words.isdisjoint(shifted_words)
    # the cue words themselves are shared (the rule is kept)
    assert {CUE_RE.match(r["question"]).group(3) for r in shifted} == {
        CUE_RE.match(r["question"]).group(3) for r in train
    }


def test_synthetic_expected_accuracy_value():
    # mean of the cue reliabilities (1, 1, .9, .9, .8, .75, .65, .55) / 8 = 6.55 / 8
    assert synthetic.expected_accuracy() == pytest.approx(0.81875, abs=1e-12)


@pytest.mark.parametrize("split", ["train", "shifted"])
def test_synthetic_cue_agreement_matches_expected_accuracy(split):
    rows = synthetic.make_rows(split, 20_000, seed=11)
    by_cue = defaultdict(Counter)
    for r in rows:
        by_cue[CUE_RE.match(r["question"]).group(3)][r["answerKey"]] += 1
    assert len(by_cue) == 8
    # the Bayes-optimal rule, estimated from the data: each cue -> its most frequent letter
    agree = sum(c.most_common(1)[0][1] for c in by_cue.values()) / len(rows)
    assert abs(agree - synthetic.expected_accuracy()) < 0.01
    # the most frequent letters are a fixed map with each letter used by two cues
    assert Counter(c.most_common(1)[0][0] for c in by_cue.values()) == {"A": 2, "B": 2, "C": 2, "D": 2}


def test_synthetic_source_through_config():
    cfg = compose_config(
        [
            "dataset=synthetic",
            "dataset.source.n_train=30",
            "dataset.source.n_validation=7",
            "dataset.source.n_shifted=0",
        ]
    ).dataset
    assert len(load_examples(cfg, "train")) == 30
    assert len(load_examples(cfg, "validation")) == 7
    with pytest.raises(DataError, match="empty"):
        load_examples(cfg, "shifted")
    with pytest.raises(DataError, match="splits"):
        load_examples(cfg, "test")
