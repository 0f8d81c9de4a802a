"""Print rendered prompts before spending GPU hours on them.

    bayeslora-prompts dataset=arc_c split=validation n=3 [--config-dir DIR] [other Hydra overrides]
    bayeslora-prompts model=gguf model.loader.path=/m/model.gguf dataset=arc_e tokens=true n=1

Prints the number of examples in the split after filtering, then the first ``n`` prompts verbatim
with their labels. ``tokens=true`` loads the chosen model's tokenizer (only the tokenizer, where the
loader can), prints the class tokens and each prompt's token count, and exits 1 with one line when a
class word is not a single token of that tokenizer (a run would refuse it after loading the model).
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
    from bayeslora.config import split_config_dir

    try:
        config_dir, args = split_config_dir(list(args))
    except BayesLoraError as e:
        print(f"bayeslora-prompts: error: {e}", file=sys.stderr)
        return 2
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
        cfg = compose_config(overrides, config_dir=config_dir)
        ds = cfg.dataset
        split = opts["split"] or ds.eval_splits[0]
        source = instantiate(ds.source)
        n_rows = len(source.rows(split))
        examples = load_examples(ds, split, source)
        tokenizer, token_line = None, None
        if opts["tokens"].lower() in ("1", "true", "yes"):
            from bayeslora.data.pipeline import class_token_ids
            from bayeslora.models import load_tokenizer

            tokenizer = load_tokenizer(cfg.model)
            ids = class_token_ids(tokenizer, list(ds.classes))  # one line and exit 1 if not single tokens
            pieces = tokenizer.convert_ids_to_tokens(ids)
            shown = ", ".join(f"{w!r} -> {p!r} ({i})" for w, p, i in zip(ds.classes, pieces, ids))
            token_line = f"class tokens of {cfg.model.name}: {shown}: each a single token"
            token_line += "\n" + unknown_token_line(tokenizer, [p for p, _ in examples[:UNK_ROWS]])
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
    if token_line:
        print(token_line)
    for i, (prompt, label) in enumerate(examples[:n]):
        extra = ""
        if tokenizer is not None:
            extra = f"  tokens={len(tokenizer(prompt)['input_ids'])}"
        print(f"\n--- example {i}  label={label} ({classes[label]}){extra}")
        print(prompt)
    return 0


# the unknown-token share is measured on this many prompts of the split (all of a small one)
UNK_ROWS = 500


def unknown_token_line(tokenizer, prompts: list[str]) -> str:
    """The share of the prompts' tokens that are the tokenizer's unknown token, as the training run
    measures it (``bayeslora.data.pipeline``), with its warning above the same threshold."""
    from bayeslora.data.pipeline import UNK_WARN

    unk = tokenizer.unk_token_id
    ids = tokenizer(prompts)["input_ids"] if prompts else []
    total = sum(len(x) for x in ids)
    if unk is None or not total:
        return f"unknown tokens: none (the tokenizer has no unknown token, {total} prompt tokens)"
    share = sum(x.count(unk) for x in ids) / total
    where = f"{100 * share:.1f} % of {total} prompt tokens ({len(ids)} prompts)"
    if share > UNK_WARN:
        return (
            f"warning: {where} are the unknown token {tokenizer.unk_token!r}: words this tokenizer "
            f"does not know (the training run warns above {100 * UNK_WARN:.0f} %)"
        )
    return f"unknown tokens: {where}"


if __name__ == "__main__":
    sys.exit(main())
