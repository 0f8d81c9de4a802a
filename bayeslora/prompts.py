"""Print rendered prompts before spending GPU hours on them.

    bayeslora-prompts dataset=arc_c split=validation n=3 [other Hydra overrides]

Prints the number of examples in the split after filtering, then the first ``n`` prompts verbatim
with their labels. ``tokens=true`` also prints each prompt's token count for the chosen model.
"""

from __future__ import annotations

import sys

from bayeslora.errors import BayesLoraError

OWN_KEYS = {"split": None, "n": "3", "tokens": "false"}


def main(argv: list[str] | None = None) -> int:
    from bayeslora.config import compose_config
    from bayeslora.data.pipeline import load_examples
    from bayeslora.utils.env import setup_entry_point
    from bayeslora.utils.instantiate import instantiate

    if argv is None:  # the command (not a call from Python): read .env, quiet library chatter
        setup_entry_point()
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    opts, overrides = dict(OWN_KEYS), []
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key in OWN_KEYS:
            opts[key] = value
        else:
            overrides.append(a)
    try:
        n = int(opts["n"])
        if n < 0:
            raise ValueError
    except ValueError:
        print(
            f"bayeslora-prompts: error: n must be a non-negative integer, got {opts['n']!r}", file=sys.stderr
        )
        return 2
    try:
        cfg = compose_config(overrides)
        ds = cfg.dataset
        split = opts["split"] or ds.eval_splits[0]
        source = instantiate(ds.source)
        n_rows = len(source.rows(split))
        examples = load_examples(ds, split, source)
        tokenizer = None
        if opts["tokens"].lower() in ("1", "true", "yes"):
            import torch

            from bayeslora.models import DTYPES

            loader = instantiate(cfg.model.loader)
            _, tokenizer = loader.load(cfg.model.quantization, DTYPES[cfg.model.dtype], torch.device("cpu"))
    except BayesLoraError as e:
        print(f"bayeslora-prompts: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # Hydra compose errors (unknown option, bad override)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"bayeslora-prompts: error: {msg}", file=sys.stderr)
        return 2
    classes = list(ds.classes)
    print(
        f"{ds.name} / {split}: {len(examples)} examples after filtering ({n_rows} rows in {source.describe(split)})"
    )
    for i, (prompt, label) in enumerate(examples[:n]):
        extra = ""
        if tokenizer is not None:
            extra = f"  tokens={len(tokenizer(prompt)['input_ids'])}"
        print(f"\n--- example {i}  label={label} ({classes[label]}){extra}")
        print(prompt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
