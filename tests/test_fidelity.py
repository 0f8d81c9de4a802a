"""The docs/FIDELITY.md rows that no other test pins: predictive sample counts, the SWAG protocol
defaults, ensemble size, BLoB's LoRA dropout, ECE bins, AdamW betas/eps, the padding multiple, and
the LoRA weights' precision over an 8-bit base.
Change a value here only together with its row in the ledger."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ledger_rows_match_the_configs(compose):
    cfg = compose([])  # method=adamw and the predictives its run composes
    pred = cfg.predictive
    assert pred.mc_dropout.n_samples == 10
    ivon = compose(["method=ivon"]).predictive.ivon
    assert (ivon.n_samples, ivon.tau) == (10, 1.0)
    assert compose(["method=blob"]).predictive.blob.n_samples == 10
    assert pred.laplace_kfac.n_samples == pred.laplace_diag.n_samples == 100_000  # LL's, not the paper's 10
    swag = pred.swag
    assert (swag.n_samples, swag.scale, swag.rank) == (10, 1.0, 5)
    assert (swag.start_step, swag.start_frac, swag.interval) == (None, 0.25, 250)
    assert (swag.keep, swag.convention) == ("spread", "swag_lora")
    # swag-lora's constant-LR phase is off; when on, it starts at SWAG's first snapshot
    assert (cfg.method.constant_lr, cfg.method.constant_lr_from) == (None, swag.start_frac)
    assert pred.swa.mean_only is True and pred.swa.interval == swag.interval
    assert cfg.eval.ece_bins == 10 and cfg.trainer.pad_to_multiple_of == 8
    assert (list(cfg.method.betas), cfg.method.eps) == ([0.9, 0.999], 1e-8)
    assert compose(["method=ensemble"]).method.n_members == 3
    assert compose(["method=blob"]).method.lora_dropout == 0.0


def test_lora_weights_stay_float32_over_an_8bit_base(compose, tiny_overrides):
    """The paper keeps LoRA weights in 16 bits; peft keeps them float32 over an int8 base with float16
    non-quantised parts (as in IL's code), and so does this project (the ledger's LoRA precision row)."""
    import torch

    from bayeslora.runner import setup

    cfg = compose(
        tiny_overrides + ["model.quantization=8bit", "model.dtype=float16", "method.predictives=[map]"]
    )
    model = setup(cfg).model  # the model a run trains
    lora = {n: p.dtype for n, p in model.named_parameters() if "lora_" in n}
    assert lora and set(lora.values()) == {torch.float32}
    other = {p.dtype for n, p in model.named_parameters() if "lora_" not in n}
    assert other == {torch.int8, torch.float16}


def test_readme_links_the_ledger():
    assert (REPO / "docs" / "FIDELITY.md").is_file()
    assert "docs/FIDELITY.md" in (REPO / "README.md").read_text(encoding="utf-8")
