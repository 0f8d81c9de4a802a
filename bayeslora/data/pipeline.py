"""Rendering, tokenisation and batching shared by every benchmark.

Tokenisation follows the paper code: left padding, pad token = BOS where the tokenizer has none,
at most ``max_length`` tokens with right truncation. Batches are padded dynamically (to the longest
example of the batch, rounded up to ``pad_to_multiple_of``) instead of to ``max_length``;
evaluation batches are bucketed by length and the original order is restored in the outputs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from bayeslora.data.templates import get_template, skip_reason
from bayeslora.errors import ConfigError, DataError, TokenizerError
from bayeslora.utils.instantiate import instantiate

log = logging.getLogger(__name__)
# A share of the prompt tokens above this that are the tokenizer's unknown token is a warning.
UNK_WARN = 0.05


@dataclass
class EncodedSplit:
    name: str
    input_ids: list[list[int]]
    labels: np.ndarray  # [N] int64
    prompts: list[str]

    def __len__(self) -> int:
        return len(self.input_ids)

    def n_tokens(self) -> int:
        return sum(len(x) for x in self.input_ids)


@dataclass
class TaskData:
    train: EncodedSplit
    evals: dict[str, EncodedSplit]
    classes: list[str]
    class_ids: list[int]
    pad_id: int
    # split -> where it was read from (and the passage form, where the source says)
    sources: dict[str, dict[str, str]] | None = None
    # split -> what the pipeline did to its rows (kept, dropped and why, capped, truncated, <unk>)
    report: dict[str, SplitReport] | None = None
    # the tokens the class words read (e.g. '▁A'), in class order
    class_tokens: list[str] | None = None


@dataclass
class SplitReport:
    """What the pipeline did to one split: ``rows`` read, those the template ``dropped`` (reason ->
    count), those past the cap (``capped`` by ``cap_key``), those ``truncated`` to ``max_length``,
    and the prompts' ``tokens`` of which ``unk_tokens`` are the unknown token."""

    rows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    capped: int = 0
    cap_key: str = ""
    truncated: int = 0
    max_length: int = 0
    tokens: int = 0
    unk_tokens: int = 0


def load_examples(
    dataset_cfg, split: str, source=None, report: SplitReport | None = None
) -> list[tuple[str, int]]:
    """Rows of ``split`` rendered with the dataset's template; filtered rows are dropped (counted by
    reason in ``report``). A row the template cannot render is one error naming the dataset, the
    split and the row (0-based index)."""
    source = source if source is not None else instantiate(dataset_cfg.source)
    name, classes = dataset_cfg.get("name", "?"), list(dataset_cfg.classes)
    template = get_template(dataset_cfg.template, name, classes)
    rows = source.rows(split)
    dropped: Counter[str] = Counter()
    examples = []
    for i, row in enumerate(rows):
        where = f"dataset {name!r}, split {split!r} ({source.describe(split)}), row {i}"
        try:
            ex = template(row)
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
        except KeyError as e:  # a built-in template reading a column the row lacks
            raise DataError(
                f"{where}: no column {e.args[0]!r} (the row has: {', '.join(map(str, row))})"
            ) from None
        if ex is None:
            dropped[skip_reason(template, row)] += 1
            continue
        if not 0 <= ex[1] < len(classes):
            raise DataError(f"{where}: label {ex[1]} out of range for classes {classes}")
        examples.append(ex)
    if report is not None:
        report.rows, report.kept, report.dropped = len(rows), len(examples), dict(dropped)
    if not examples:
        raise DataError(f"split {split!r} of {source.describe(split)} has no usable examples")
    return examples


def _tokenizer_name(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__


def class_token_ids(tokenizer, classes) -> list[int]:
    """Ids of the leading-space tokens of the class words (e.g. '▁A', '▁True' for Llama-2).

    Found as the tokens that ``"Answer: <word>"`` adds to ``"Answer:"``; a word that is not exactly
    one token is an error naming the word and the tokenizer.
    """
    base = tokenizer("Answer:", add_special_tokens=False)["input_ids"]
    ids = []
    for word in classes:
        full = tokenizer(f"Answer: {word}", add_special_tokens=False)["input_ids"]
        extra = full[len(base) :]
        if full[: len(base)] != base or len(extra) != 1:
            pieces = tokenizer.convert_ids_to_tokens(extra)
            raise TokenizerError(
                f"class word {word!r} is not a single token for tokenizer {_tokenizer_name(tokenizer)!r} "
                f"(' {word}' -> {pieces})"
            )
        if tokenizer.unk_token_id is not None and extra[0] == tokenizer.unk_token_id:
            raise TokenizerError(
                f"class word {word!r} is not in the vocabulary of tokenizer {_tokenizer_name(tokenizer)!r} "
                f"(' {word}' -> the unknown token)"
            )
        ids.append(extra[0])
    if len(set(ids)) != len(ids):
        raise TokenizerError(f"class words {list(classes)} share token ids {ids}")
    return ids


def prepare_tokenizer(tokenizer):
    """Left padding; pad token = BOS when the tokenizer has none (as the paper code)."""
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "right"
    if tokenizer.pad_token_id is None:
        if tokenizer.bos_token_id is None:
            raise TokenizerError(
                f"tokenizer {_tokenizer_name(tokenizer)!r} has neither a pad nor a BOS token"
            )
        tokenizer.pad_token = tokenizer.bos_token
    return tokenizer


def encode_prompts(tokenizer, name: str, examples, max_length: int) -> EncodedSplit:
    prompts = [p for p, _ in examples]
    enc = tokenizer(prompts, truncation=True, max_length=max_length, padding=False)
    return EncodedSplit(
        name=name,
        input_ids=[list(x) for x in enc["input_ids"]],
        labels=np.asarray([lab for _, lab in examples], dtype=np.int64),
        prompts=prompts,
    )


def _split(
    tokenizer, dataset_cfg, split: str, source, max_length: int, cap: int | None, cap_key: str, name=None
):
    """``split`` loaded, capped at ``cap`` examples and encoded, with its :class:`SplitReport`; a
    high unknown-token rate in its prompts is a warning."""
    report = SplitReport(max_length=max_length, cap_key=cap_key)
    examples = load_examples(dataset_cfg, split, source, report)
    if cap is not None and len(examples) > cap:
        report.capped, examples = len(examples) - cap, examples[:cap]
    name = name or split
    encoded = encode_prompts(tokenizer, name, examples, max_length)
    report.kept = len(encoded)
    at_limit = [p for p, x in zip(encoded.prompts, encoded.input_ids) if len(x) >= max_length]
    if at_limit:  # those the truncation cut (a prompt of exactly max_length tokens was not)
        full = tokenizer(at_limit, truncation=False, padding=False)["input_ids"]
        report.truncated = sum(len(x) > max_length for x in full)
    report.tokens = encoded.n_tokens()
    unk = tokenizer.unk_token_id  # prompts are not padded: every such id is an unknown piece of text
    if unk is not None:
        report.unk_tokens = sum(x.count(unk) for x in encoded.input_ids)
    if report.tokens and report.unk_tokens > UNK_WARN * report.tokens:
        log.warning(
            "%s: %.0f %% of the prompt tokens are the unknown token %r (words tokenizer %r does not know)",
            name,
            100 * report.unk_tokens / report.tokens,
            tokenizer.unk_token,
            _tokenizer_name(tokenizer),
        )
    return encoded, report


def build_task(
    dataset_cfg,
    tokenizer,
    max_length: int,
    max_eval_examples: int | None = None,
    ood: dict | None = None,
    max_train_examples: int | None = None,
) -> TaskData:
    """Training split (its first ``max_train_examples`` if set: smoke tests) + evaluation splits, plus
    the first evaluation split of each ``ood`` dataset config as ``"<name>:<split>"`` (its classes
    must be the training dataset's)."""
    prepare_tokenizer(tokenizer)
    try:
        class_ids = class_token_ids(tokenizer, list(dataset_cfg.classes))
    except TokenizerError as e:
        raise TokenizerError(f"dataset {dataset_cfg.get('name', '?')!r}: {e}") from None
    source = instantiate(dataset_cfg.source)
    train_split = dataset_cfg.train_split
    train_cap = "trainer.max_train_examples"
    train, train_report = _split(
        tokenizer, dataset_cfg, train_split, source, max_length, max_train_examples, train_cap
    )
    report = {train_split: train_report}
    sources = {train_split: _provenance(source, train_split)}
    evals = {}
    for split in dataset_cfg.eval_splits:
        sources[split] = _provenance(source, split)
        evals[split], report[split] = _split(
            tokenizer, dataset_cfg, split, source, max_length, max_eval_examples, "eval.max_examples"
        )
    for name, ocfg in (ood or {}).items():
        if list(ocfg.classes) != list(dataset_cfg.classes):
            raise ConfigError(
                f"OOD set {name!r} has classes {list(ocfg.classes)}, the training dataset "
                f"{dataset_cfg.name!r} has {list(dataset_cfg.classes)}; they must match"
            )
        split, key = ocfg.eval_splits[0], f"{name}:{ocfg.eval_splits[0]}"
        evals[key], report[key] = _split(
            tokenizer,
            ocfg,
            split,
            instantiate(ocfg.source),
            max_length,
            max_eval_examples,
            "eval.max_examples",
            key,
        )
        sources[key] = _provenance(instantiate(ocfg.source), split)
    class_tokens = [str(t) for t in tokenizer.convert_ids_to_tokens(class_ids)]
    return TaskData(
        train,
        evals,
        list(dataset_cfg.classes),
        class_ids,
        tokenizer.pad_token_id,
        sources,
        report,
        class_tokens,
    )


def _provenance(source, split: str) -> dict[str, str]:
    if hasattr(source, "provenance"):
        return source.provenance(split)
    return {"source": source.describe(split)}


def collate(seqs: list[list[int]], pad_id: int, multiple: int = 8) -> dict[str, torch.Tensor]:
    """Left-pad to the longest sequence, rounded up to ``multiple``."""
    length = max(len(s) for s in seqs)
    if multiple > 1:
        length = -(-length // multiple) * multiple
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, length - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, length - len(s) :] = 1
    return {"input_ids": ids, "attention_mask": mask}


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch), so resumable."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def train_batches(
    split: EncodedSplit, batch_size: int, seed: int, pad_id: int, multiple: int = 8, start_step: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless shuffled training batches (the last partial batch of an epoch is dropped).

    ``start_step`` skips that many batches without materialising them (resume).
    """
    n = len(split)
    if n < batch_size:
        raise DataError(f"training split {split.name!r} has {n} examples, fewer than batch size {batch_size}")
    per_epoch = n // batch_size
    step = start_step
    while True:
        epoch, pos = divmod(step, per_epoch)
        order = epoch_permutation(n, seed, epoch)
        idx = order[pos * batch_size : (pos + 1) * batch_size]
        batch = collate([split.input_ids[i] for i in idx], pad_id, multiple)
        batch["labels"] = torch.as_tensor(split.labels[idx])
        yield batch
        step += 1


def eval_batches(split: EncodedSplit, batch_size: int, pad_id: int, multiple: int = 8):
    """Batches bucketed by length (less padding); yields ``(indices, batch)`` so callers restore order."""
    order = np.argsort([len(s) for s in split.input_ids], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([split.input_ids[i] for i in idx], pad_id, multiple)
        batch["labels"] = torch.as_tensor(split.labels[idx])
        yield idx, batch
