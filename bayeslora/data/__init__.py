"""Benchmarks -> rendered prompts -> token ids -> left-padded batches."""

from bayeslora.data.pipeline import (
    EncodedSplit,
    TaskData,
    build_task,
    class_token_ids,
    encode_prompts,
    eval_batches,
    load_examples,
    train_batches,
)

__all__ = [
    "EncodedSplit",
    "TaskData",
    "build_task",
    "class_token_ids",
    "encode_prompts",
    "eval_batches",
    "load_examples",
    "train_batches",
]
