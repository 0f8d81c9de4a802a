"""Precision probe: what the bf16 body of ``model=smollm2_135m_bf16`` keeps of the Bayesian rows.

With ``model=smollm2_135m_bf16`` the frozen transformer body runs in bfloat16 (LoRA weights, the
class LM-head rows and the class logits in float32): the LoRA outputs are added into bf16 q/v
activations and the final norm runs in bf16, so the last hidden state is bf16-rounded before the
float32 head. A weight perturbation whose effect on a base output is below one bf16 step is partly
lost, so IVON's weight samples and Laplace's Jacobians see bf16 precision. This probe measures how
much, with the SAME LoRA adapter on the float32 body (``model=smollm2_135m``) and the bf16 body:

a. the class logits at the adapter's weights m: max |Δ| and relative L2 (the ordinary bf16 error);
b. IVON weight samples θ_k = m + s·√v·ε_k (the same ε_k on both bodies, s = 1 and the scale test
   s = 0.1, 10): the logit perturbation δ_k = logits(θ_k) − logits(m) on each body, its relative
   error ‖δ_bf16 − δ_fp32‖ / ‖δ_fp32‖ per row (median, 90th percentile), the across-sample spread
   of the class probabilities on each body, and the IVON predictive (mean softmax over the samples)
   scored by :mod:`bayeslora.metrics` on each body;
c. the Jacobian of the class logits w.r.t. all LoRA parameters (torch.autograd, one row per
   backward) for a few rows: ‖J_bf16 − J_fp32‖_F / ‖J_fp32‖_F and their cosine; and, unless
   ``--la-n 0``, the project's Laplace predictive (``laplace_kfac`` through the runner's ``setup``
   and ``evaluate``: curvature on ``--la-train-n`` training rows, predictive on ``--la-n`` rows) on
   both bodies.

Models, task, batches and class logits are the runner's (:func:`bayeslora.runner.setup` of an IVON
run with ``trainer.max_steps=0``; ``method.logits`` = :func:`bayeslora.models.class_logits`; the
evaluation batches of :func:`bayeslora.data.eval_batches`); a weight sample is set with
:func:`bayeslora.predictives.sampling.lora_weights`, as the IVON predictive does at
``eval.sample_chunk=1``. The adapter: with ``--run-dir`` an IVON run's ``adapter/`` and
``ivon_posterior.pt`` (its dataset from the run's ``.hydra/config.yaml``); otherwise a seeded one
(peft's A, B ~ N(0, ``--b-std``)) with IVON's initial posterior variance v = 1 / (ess · (hess_init
+ weight_decay)) from ``conf/method_model/ivon_smollm2_135m_bf16.yaml`` for the dataset.

    BAYESLORA_DATA_DIR=/path/to/data python scripts/precision_probe.py            # ARC-E, 64 rows
    python scripts/precision_probe.py --run-dir results/runs/mini/winogrande_s/smollm2_135m_bf16/ivon/seed=42

Writes ``results/probes/precision.{json,md}``; ``--from-json`` redraws the Markdown only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayeslora import metrics as M  # noqa: E402
from bayeslora.config import compose_config  # noqa: E402
from bayeslora.data import eval_batches  # noqa: E402
from bayeslora.models import lora_parameters  # noqa: E402
from bayeslora.predictives.sampling import lora_vector, lora_weights  # noqa: E402
from bayeslora.runner import Run, evaluate, fresh_lora_model, setup, to_device  # noqa: E402

OUT = ROOT / "results" / "probes"
STEM = "precision"
FP32, BF16 = "smollm2_135m", "smollm2_135m_bf16"
# where the IVON settings of the seeded adapter come from (the bf16 model's per-dataset lookup)
IVON_SOURCE = f"conf/method_model/ivon_{BF16}.yaml"


# -- the adapter ----------------------------------------------------------------------------------
class Adapter:
    """The LoRA adapter put on every body: a seeded one, or an IVON run's (``run_dir``)."""

    def __init__(self, run_dir: str | None, b_std: float, seed: int):
        self.run_dir = None if run_dir is None else Path(run_dir).expanduser()
        self.b_std, self.seed = float(b_std), int(seed)
        self.mean: torch.Tensor | None = None  # m, flat (float32, CPU), fixed by the first body
        self.variance: torch.Tensor | None = None  # v, flat
        if self.run_dir is not None:
            for need in ("adapter", "ivon_posterior.pt"):
                if not (self.run_dir / need).exists():
                    raise SystemExit(f"--run-dir {self.run_dir}: no {need} there (an IVON run's folder?)")
            state = torch.load(self.run_dir / "ivon_posterior.pt", map_location="cpu", weights_only=True)
            self.mean, self.variance = state["mean"].float(), state["variance"].float()

    @property
    def kind(self) -> str:
        return "ivon_run" if self.run_dir is not None else "seeded"

    def dataset(self) -> str | None:
        """The dataset of the IVON run (from its ``.hydra/config.yaml``), if there is one."""
        hydra = None if self.run_dir is None else self.run_dir / ".hydra" / "config.yaml"
        return None if hydra is None or not hydra.is_file() else str(OmegaConf.load(hydra).dataset.name)

    def loader(self):
        """A ``load_model`` for :func:`bayeslora.runner.setup`: the body with this adapter's weights."""

        def load(cfg, device):
            if self.run_dir is not None:
                from bayeslora.adapters import adapter_model, read_adapter

                model, tok = adapter_model(cfg, device, read_adapter(str(self.run_dir / "adapter")))
            else:
                model, tok = fresh_lora_model(cfg, device)  # peft's A from the run seed, B = 0
                if self.mean is None:
                    gen = torch.Generator().manual_seed(self.seed)
                    with torch.no_grad():
                        for name, p in lora_parameters(model):
                            if ".lora_B." in name:
                                p.copy_(torch.randn(p.shape, generator=gen) * self.b_std)
            current = lora_vector(model).float().cpu()
            if self.mean is None:
                self.mean = current
            elif current.shape != self.mean.shape:
                raise SystemExit(f"LoRA sizes differ between bodies: {current.shape} vs {self.mean.shape}")
            elif self.run_dir is not None and not torch.allclose(current, self.mean, rtol=1e-5, atol=1e-7):
                raise SystemExit("ivon_posterior.pt's mean is not the adapter's weights")
            with torch.no_grad():  # the identical weights on every body
                offset = 0
                for _, p in lora_parameters(model):
                    p.copy_(self.mean[offset : offset + p.numel()].view_as(p).to(p.device, p.dtype))
                    offset += p.numel()
            if not torch.equal(lora_vector(model).float().cpu(), self.mean):
                raise SystemExit("the adapter's weights did not load identically")
            return model, tok

        return load

    def info(self) -> dict:
        out = {"kind": self.kind, "n_params": None if self.mean is None else int(self.mean.numel())}
        if self.run_dir is not None:
            out["run_dir"] = str(self.run_dir)
        else:
            out.update(
                b_std=self.b_std, seed=self.seed, a_init="peft default (kaiming-uniform), from the run seed"
            )
        if self.mean is not None:
            out["mean_abs"] = float(self.mean.abs().mean())
        if self.variance is not None:
            sd = self.variance.sqrt()
            out["posterior_std"] = {
                "min": float(sd.min()),
                "median": float(sd.median()),
                "max": float(sd.max()),
            }
        return out


def ivon_settings(dataset: str, data_dir: str | None) -> dict:
    """ess, hess_init and weight_decay of an IVON run of the bf16 model on ``dataset``."""
    cfg = compose_config([f"model={BF16}", f"dataset={dataset}", "method=ivon", *data_overrides(data_dir)])
    return {k: float(cfg.method[k]) for k in ("ess", "hess_init", "weight_decay")}


def data_overrides(data_dir: str | None) -> list[str]:
    return [] if data_dir is None else [f"paths.data_dir={data_dir}"]


def body_overrides(
    model: str, dataset: str, n: int, ivon: dict, data_dir: str | None, seed: int
) -> list[str]:
    """An IVON run at ``trainer.max_steps=0`` on CPU, evaluated on the first ``n`` rows, with the
    bf16 model's IVON settings on every body (the fp32 model's lookup has no ARC-E entry)."""
    return [
        f"model={model}",
        f"dataset={dataset}",
        "method=ivon",
        f"method.ess={ivon['ess']}",
        f"method.hess_init={ivon['hess_init']}",
        f"method.weight_decay={ivon['weight_decay']}",
        "method.predictives=[ivon_mean]",
        "trainer.max_steps=0",
        "trainer.device=cpu",
        "trainer.num_threads=1",
        "trainer.progress_bar=false",
        f"eval.max_examples={n}",
        f"seed={seed}",
        *data_overrides(data_dir),
    ]


def build_bodies(
    models: dict[str, str], adapter: Adapter, dataset: str, n: int, data_dir: str | None, seed: int
) -> tuple[dict[str, Run], dict]:
    """One runner ``setup`` per body (label -> model config name), every one with ``adapter``."""
    ivon = ivon_settings(dataset, data_dir) if adapter.variance is None else None
    runs = {}
    for label, model in models.items():
        cfg = compose_config(body_overrides(model, dataset, n, ivon or _dummy_ivon(), data_dir, seed))
        runs[label] = setup(cfg, load_model=adapter.loader())
    if adapter.variance is None:  # IVON's posterior at its initialisation: the project's own formula
        v = runs[next(iter(runs))].method.posterior_variance().float().cpu()
        formula = 1.0 / (ivon["ess"] * (ivon["hess_init"] + ivon["weight_decay"]))
        if not torch.allclose(v, torch.full_like(v, formula), rtol=1e-6):
            raise SystemExit(f"IVON's initial variance is not 1/(ess (hess_init + wd)) = {formula}")
        adapter.variance = v
    return runs, {"ivon_settings": ivon, "ivon_source": IVON_SOURCE if ivon else "ivon_posterior.pt"}


def _dummy_ivon() -> dict:
    # with --run-dir the variance is the run's; the IVON method still needs valid settings to set up
    return {"ess": 1e5, "hess_init": 0.01, "weight_decay": 0.0}


# -- measurements ---------------------------------------------------------------------------------
def first_rows(run: Run, n: int):
    """The evaluation split's first ``n`` rows (as the runner's ``predict_split`` cuts them)."""
    data = run.task.evals[list(run.task.evals)[0]]
    n = min(n, len(data))
    return type(data)(data.name, data.input_ids[:n], data.labels[:n], data.prompts[:n])


@torch.no_grad()
def split_logits(run: Run, data, weights: torch.Tensor) -> np.ndarray:
    """Class logits ``[N, C]`` (float64 of the float32 logits) at the flat LoRA ``weights``, in
    dataset order, in the runner's evaluation batches, dropout off."""
    run.model.eval()
    tr = run.cfg.trainer
    out = np.zeros((len(data.labels), len(run.task.class_ids)), dtype=np.float64)
    with lora_weights(run.model, weights.to(run.device)):
        for idx, batch in eval_batches(data, tr.eval_batch_size, run.task.pad_id, tr.pad_to_multiple_of):
            out[idx] = run.method.logits(run.model, to_device(batch, run.device)).double().cpu().numpy()
    return out


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖ (0 when both are 0)."""
    nb = float(np.linalg.norm(b))
    d = float(np.linalg.norm(a - b))
    return 0.0 if d == 0 else (d / nb if nb > 0 else float("inf"))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def sample_logits(runs: dict[str, Run], data, mean, std, eps: torch.Tensor, scale: float) -> dict:
    """Per body: logits ``[K, N, C]`` at θ_k = m + scale·std·ε_k."""
    out = {}
    for label, run in runs.items():
        out[label] = np.stack([split_logits(run, data, mean + scale * std * e) for e in eps])
    return out


def ivon_block(base: dict, samples: dict, labels: np.ndarray, ref: str, n_bins: int) -> dict:
    """(b) for one scale: δ's relative error per row against ``ref``, spread, predictive metrics."""
    res = {"bodies": {}, "vs_ref": {}}
    delta = {k: samples[k] - base[k][None] for k in samples}  # [K, N, C]
    for k in samples:
        probs = _softmax(samples[k])
        logp = _log_softmax(samples[k])
        m = M.classification_metrics(None, labels, n_bins, log_probs=M.log_mean_probs(logp))
        res["bodies"][k] = {
            "delta_rms": float(np.sqrt((delta[k] ** 2).mean())),
            "spread": float(probs.std(axis=0, ddof=1).mean()),  # mean over rows, classes of std over k
            "predictive": m,
            "_per_nll": M.per_example_metrics(None, labels, log_probs=M.log_mean_probs(logp))["nll"],
            "_pbar": np.exp(M.log_mean_probs(logp)),
        }
    for k in samples:
        if k == ref:
            continue
        d, r = delta[k], delta[ref]
        per_row = np.array([rel(d[:, i], r[:, i]) for i in range(d.shape[1])])
        bk, br = res["bodies"][k], res["bodies"][ref]
        dn = bk["_per_nll"] - br["_per_nll"]
        res["vs_ref"][k] = {
            "delta_rel_err_median": float(np.median(per_row)),
            "delta_rel_err_p90": float(np.quantile(per_row, 0.9)),
            "delta_rel_err_max": float(per_row.max()),
            "delta_rel_err_pooled": rel(d, r),
            "delta_err_rms": float(np.sqrt(((d - r) ** 2).mean())),
            "delta_cosine": float((d * r).sum() / max(np.linalg.norm(d) * np.linalg.norm(r), 1e-300)),
            "spread_ratio": bk["spread"] / br["spread"] if br["spread"] > 0 else float("nan"),
            "nll_diff": bk["predictive"]["nll"] - br["predictive"]["nll"],
            "nll_diff_se": float(dn.std(ddof=1) / np.sqrt(len(dn))) if len(dn) > 1 else float("nan"),
            "ece_diff": bk["predictive"]["ece"] - br["predictive"]["ece"],
            "acc_diff": bk["predictive"]["acc"] - br["predictive"]["acc"],
            "max_abs_pbar_diff": float(np.abs(bk["_pbar"] - br["_pbar"]).max()),
            "argmax_agreement": float((bk["_pbar"].argmax(1) == br["_pbar"].argmax(1)).mean()),
        }
    for b in res["bodies"].values():
        b.pop("_per_nll")
        b.pop("_pbar")
    return res


def jacobian(run: Run, data, rows: int) -> tuple[torch.Tensor, list[bool]]:
    """``J [rows, C, P]``: the class logits' gradients w.r.t. every LoRA parameter (flat, the order of
    :func:`bayeslora.models.lora_parameters`), one row per batch (no padding), dropout off; and which
    entries of the flat vector are lora_B's."""
    run.model.eval()
    named = lora_parameters(run.model)
    params = [p for _, p in named]
    mask = torch.cat([torch.full((p.numel(),), ".lora_B." in n) for n, p in named])
    one = type(data)(data.name, data.input_ids[:rows], data.labels[:rows], data.prompts[:rows])
    out = [None] * len(one.labels)
    for idx, batch in eval_batches(one, 1, run.task.pad_id, run.cfg.trainer.pad_to_multiple_of):
        logits = run.method.logits(run.model, to_device(batch, run.device))[0]
        grads = []
        for c in range(len(logits)):
            g = torch.autograd.grad(logits[c], params, retain_graph=c < len(logits) - 1)
            grads.append(torch.cat([x.detach().float().flatten().cpu() for x in g]))
        out[int(idx[0])] = torch.stack(grads)
    return torch.stack(out), mask


def jacobian_block(jac: dict[str, torch.Tensor], mask: torch.Tensor, ref: str) -> dict:
    res = {"norm_fp": {k: float(v.double().norm()) for k, v in jac.items()}, "vs_ref": {}}
    r = jac[ref].double()
    for k, v in jac.items():
        if k == ref:
            continue
        v = v.double()
        per_row = [(float((v[i] - r[i]).norm() / r[i].norm())) for i in range(len(r))]
        cos = [float((v[i] * r[i]).sum() / (v[i].norm() * r[i].norm())) for i in range(len(r))]
        res["vs_ref"][k] = {
            "rel_err_pooled": float((v - r).norm() / r.norm()),
            "rel_err_per_row_median": float(np.median(per_row)),
            "rel_err_per_row_max": float(np.max(per_row)),
            "cosine_pooled": float((v * r).sum() / (v.norm() * r.norm())),
            "cosine_per_row_min": float(np.min(cos)),
            "rel_err_lora_A": float((v[..., ~mask] - r[..., ~mask]).norm() / r[..., ~mask].norm()),
            "rel_err_lora_B": float((v[..., mask] - r[..., mask]).norm() / r[..., mask].norm()),
        }
    return res


def measure(
    runs: dict[str, Run],
    adapter: Adapter,
    ref: str,
    n: int,
    k: int,
    scales: list[float],
    jac_rows: int,
    seed: int,
    scale_n: int | None = None,
    log=print,
) -> dict:
    """(a), (b) per scale and (c, Jacobians) of every body in ``runs`` against the body ``ref``, all
    with the adapter's weights m and variance v (the same ε_k on every body). ``scale_n``: rows for
    the scales other than 1 (default ``n``)."""
    first = runs[ref]
    data = first_rows(first, n)
    labels = np.asarray(data.labels)
    n_bins = int(first.cfg.eval.ece_bins)
    mean, std = adapter.mean, adapter.variance.sqrt()
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((k, mean.numel()), generator=gen)
    out: dict = {"n": len(labels), "k": k, "classes": len(first.task.class_ids), "timing_s": {}}

    t0 = time.perf_counter()
    base = {label: split_logits(run, data, mean) for label, run in runs.items()}
    out["timing_s"]["base"] = round(time.perf_counter() - t0, 1)
    out["base"] = {"logit_rms": {b: float(np.sqrt((x**2).mean())) for b, x in base.items()}, "vs_ref": {}}
    for b, x in base.items():
        if b != ref:
            d = x - base[ref]
            out["base"]["vs_ref"][b] = {
                "max_abs": float(np.abs(d).max()),
                "err_rms": float(np.sqrt((d**2).mean())),
                "rel_l2": rel(x, base[ref]),
                "map_nll_diff": M.classification_metrics(None, labels, n_bins, log_probs=_log_softmax(x))[
                    "nll"
                ]
                - M.classification_metrics(None, labels, n_bins, log_probs=_log_softmax(base[ref]))["nll"],
            }
    out["base"]["map"] = {
        b: M.classification_metrics(None, labels, n_bins, log_probs=_log_softmax(x)) for b, x in base.items()
    }
    log(f"(a) base logits: {json.dumps(out['base']['vs_ref'])}")

    out["ivon"] = {}
    for s in scales:
        t0 = time.perf_counter()
        rows = n if s == 1.0 or scale_n is None else min(scale_n, n)
        sub = data if rows == len(labels) else first_rows(first, rows)
        sub_base = {b: x[:rows] for b, x in base.items()}
        samp = sample_logits(runs, sub, mean, std, eps, s)
        blk = ivon_block(sub_base, samp, labels[:rows], ref, n_bins)
        blk["n"], blk["scale"] = rows, s
        out["ivon"][f"{s:g}"] = blk
        out["timing_s"][f"ivon_x{s:g}"] = round(time.perf_counter() - t0, 1)
        log(f"(b) scale {s:g} ({rows} rows): {json.dumps(blk['vs_ref'])}")

    if jac_rows:
        t0 = time.perf_counter()
        jac, mask = {}, None
        for label, run in runs.items():
            with lora_weights(run.model, mean.to(run.device)):
                jac[label], mask = jacobian(run, data, jac_rows)
        out["jacobian"] = jacobian_block(jac, mask, ref)
        out["jacobian"]["rows"] = int(min(jac_rows, len(labels)))
        out["timing_s"]["jacobian"] = round(time.perf_counter() - t0, 1)
        log(f"(c) Jacobian: {json.dumps(out['jacobian']['vs_ref'])}")
    return out


def laplace_block(runs: dict[str, Run], adapter: Adapter, dataset: str, a) -> dict:
    """(c-2) The project's ``laplace_kfac`` row on each body: the runner's ``setup`` (an AdamW run at
    ``trainer.max_steps=0`` on the same model object, with the adapter's weights) and ``evaluate``
    (curvature on the first ``--la-train-n`` training rows, predictive on ``--la-n`` rows)."""
    out = {"n": a.la_n, "n_train": a.la_train_n, "predictive": "laplace_kfac", "bodies": {}}
    for label, r in runs.items():
        t0 = time.perf_counter()
        cfg = compose_config(
            [
                f"model={r.cfg.model.name}",
                f"dataset={dataset}",
                "method=adamw",
                "method.predictives=[map,laplace_kfac]",
                "trainer.max_steps=0",
                "trainer.device=cpu",
                "trainer.num_threads=1",
                "trainer.progress_bar=false",
                f"trainer.max_train_examples={a.la_train_n}",
                f"eval.max_examples={a.la_n}",
                f"seed={a.seed}",
                *data_overrides(a.data_dir),
            ]
        )
        with lora_weights(r.model, adapter.mean.to(r.device)):
            la = setup(cfg, load_model=lambda _cfg, _dev, r=r: (r.model, r.tokenizer))
            metrics = evaluate(la)
        out["bodies"][label] = {
            "laplace_kfac": metrics["laplace_kfac"],
            "map": metrics["map"],
            "prior_precision": la.record.predictive_info.get("laplace_kfac", {}),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        print(f"(c2) {label}: {json.dumps(out['bodies'][label])}", flush=True)
    a_, b_ = (out["bodies"][k]["laplace_kfac"] for k in ("fp32", "bf16"))
    out["diff"] = {m: b_[m] - a_[m] for m in ("nll", "ece", "acc")}
    return out


# -- report ---------------------------------------------------------------------------------------
def _g(x: float, d: int = 3) -> str:
    return f"{x:.{d}g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.{d}f}"


def to_markdown(rep: dict) -> str:
    m, ad = rep["measure"], rep["adapter"]
    if ad["kind"] == "seeded":
        src = (
            f"a seeded adapter (peft's A, B ~ N(0, {ad['b_std']}), seed {ad['seed']}) with IVON's initial "
            f"posterior variance v = 1/(ess·(hess_init + wd)), ess = {rep['ivon_settings']['ess']:g}, "
            f"hess_init = {rep['ivon_settings']['hess_init']:g}, wd = {rep['ivon_settings']['weight_decay']:g} "
            f"({rep['ivon_source']}, {rep['dataset']}): posterior std {_g(ad['posterior_std']['median'])}"
        )
    else:
        s = ad["posterior_std"]
        src = (
            f"the IVON run {ad['run_dir']} (its adapter and ivon_posterior.pt): posterior std min / median / "
            f"max {_g(s['min'])} / {_g(s['median'])} / {_g(s['max'])}"
        )
    lines = [
        "# Precision probe: what the bf16 body keeps of the Bayesian rows",
        "",
        f"Written by `scripts/precision_probe.py`: the same LoRA adapter ({ad['n_params']:,} parameters, "
        f"r8 on q/v) on `model={FP32}` (fp32 body, the reference) and `model={BF16}` (bf16 body, fp32 "
        f"LoRA / head rows / class logits), {rep['dataset']} validation, first {m['n']} rows, "
        f"{m['classes']} classes, CPU, 1 thread. Adapter: {src}.",
        "",
        f"Command: `{rep['command']}` ({rep['wall_s']:.0f} s).",
        "",
        "## (a) class logits at the adapter's weights m",
        "",
        "| | max abs Δ logit | relative L2 | MAP NLL: fp32 / bf16 (Δ) |",
        "|---|---|---|---|",
    ]
    b = m["base"]["vs_ref"]["bf16"]
    mp = m["base"]["map"]
    lines += [
        f"| bf16 vs fp32 | {_g(b['max_abs'])} | {_g(b['rel_l2'])} | {mp['fp32']['nll']:.4f} / "
        f"{mp['bf16']['nll']:.4f} ({b['map_nll_diff']:+.4f}) |",
        "",
        f"Reading: the bf16 body moves the class logits by {_g(b['err_rms'])} RMS (max {_g(b['max_abs'])}) "
        f"out of a logit RMS of {m['base']['logit_rms']['fp32']:.2f}, and the MAP NLL by {b['map_nll_diff']:+.4f}.",
        "",
        f"## (b) IVON weight samples θ_k = m + s·√v·ε_k, K = {m['k']}, the same ε_k on both bodies",
        "",
        "δ_k = logits(θ_k) − logits(m) on each body; relative error ‖δ_bf16 − δ_fp32‖ / ‖δ_fp32‖ per row "
        "(over samples and classes); spread = mean over rows and classes of the std over samples of p; "
        "predictive = mean softmax over the K samples (bayeslora.metrics).",
        "",
        "| scale s | rows | RMS δ (fp32) | rel. err. of δ: median / p90 / max | cos(δ_bf16, δ_fp32) | "
        "spread fp32 / bf16 (ratio) | predictive NLL fp32 / bf16 (Δ ± SE) | ECE fp32 / bf16 | ACC fp32 / bf16 | "
        "argmax agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, blk in m["ivon"].items():
        v, f, h = blk["vs_ref"]["bf16"], blk["bodies"]["fp32"], blk["bodies"]["bf16"]
        lines.append(
            f"| {s} | {blk['n']} | {_g(f['delta_rms'])} | {_g(v['delta_rel_err_median'])} / "
            f"{_g(v['delta_rel_err_p90'])} / {_g(v['delta_rel_err_max'])} | {v['delta_cosine']:.5f} | "
            f"{_g(f['spread'])} / {_g(h['spread'])} ({v['spread_ratio']:.3f}) | "
            f"{f['predictive']['nll']:.4f} / {h['predictive']['nll']:.4f} ({v['nll_diff']:+.4f} ± "
            f"{v['nll_diff_se']:.4f}) | {100 * f['predictive']['ece']:.2f} / {100 * h['predictive']['ece']:.2f} | "
            f"{100 * f['predictive']['acc']:.1f} / {100 * h['predictive']['acc']:.1f} | "
            f"{100 * v['argmax_agreement']:.0f}% |"
        )
    err = m["base"]["vs_ref"]["bf16"]["err_rms"]
    lines += ["", "Reading, per scale (bf16 against fp32):"]
    for s, blk in m["ivon"].items():
        v, f = blk["vs_ref"]["bf16"], blk["bodies"]["fp32"]
        lines.append(
            f"- s = {s}: the bf16 body's δ is off by {_g(v['delta_err_rms'])} logits RMS "
            f"({_g(v['delta_err_rms'] / f['delta_rms'])}× the fp32 δ's RMS {_g(f['delta_rms'])}; (a)'s error of "
            f"the logits themselves is {_g(err)} RMS); the sample spread of p is "
            f"{v['spread_ratio']:.2f}× fp32's and the IVON predictive NLL differs by {v['nll_diff']:+.4f} "
            f"(± {v['nll_diff_se']:.4f} paired SE)."
        )
    lines.append("")
    if "jacobian" in m:
        j = m["jacobian"]["vs_ref"]["bf16"]
        lines += [
            f"## (c) Jacobian of the class logits w.r.t. all LoRA parameters, {m['jacobian']['rows']} rows",
            "",
            "| | rel. err. ‖J_bf16 − J_fp32‖_F / ‖J_fp32‖_F (pooled; per row median / max) | cosine (pooled; "
            "per row min) | rel. err. lora_A / lora_B entries |",
            "|---|---|---|---|",
            f"| bf16 vs fp32 | {_g(j['rel_err_pooled'])} ({_g(j['rel_err_per_row_median'])} / "
            f"{_g(j['rel_err_per_row_max'])}) | {j['cosine_pooled']:.6f} ({j['cosine_per_row_min']:.6f}) | "
            f"{_g(j['rel_err_lora_A'])} / {_g(j['rel_err_lora_B'])} |",
            "",
            f"Reading: the Jacobian that Laplace's J Σ Jᵀ is built from is off by {100 * j['rel_err_pooled']:.1f}% "
            f"(Frobenius) on the bf16 body, the same on A and B entries, and points the same way (cosine "
            f"{j['cosine_pooled']:.4f}).",
            "",
        ]
    la = rep.get("laplace")
    if la:
        f, h = la["bodies"]["fp32"], la["bodies"]["bf16"]
        lines += [
            f"## (c-2) the project's `laplace_kfac` row, curvature on {la['n_train']} training rows, "
            f"{la['n']} validation rows",
            "",
            "| | LA NLL | LA ECE % | LA ACC % | tuned prior precision λ | MAP NLL (these rows) | wall s |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, x in (("fp32", f), ("bf16", h)):
            lines.append(
                f"| {name} | {x['laplace_kfac']['nll']:.4f} | {100 * x['laplace_kfac']['ece']:.2f} | "
                f"{100 * x['laplace_kfac']['acc']:.1f} | {x['prior_precision'].get('prior_precision', float('nan')):.2f} | "
                f"{x['map']['nll']:.4f} | {x['wall_s']:.0f} |"
            )
        lines += [
            "",
            f"Reading: the LA predictive NLL differs by {la['diff']['nll']:+.4f} (bf16 − fp32) on these "
            f"{la['n']} rows, its ECE by {100 * la['diff']['ece']:+.2f} points; one fit per body (no SE).",
            "",
        ]
    else:
        lines += ["## (c-2) the project's Laplace predictive", "", rep.get("laplace_skipped", "not run"), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="arc_e", help="ignored with --run-dir (the run's dataset)")
    ap.add_argument("--run-dir", default=None, help="an IVON run's folder (adapter/ and ivon_posterior.pt)")
    ap.add_argument("--n", type=int, default=64, help="first N validation rows")
    ap.add_argument("--k", type=int, default=10, help="IVON weight samples")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.1, 10.0])
    ap.add_argument("--scale-n", type=int, default=16, help="rows for the scales other than 1 (0: --n)")
    ap.add_argument("--jac-rows", type=int, default=8)
    ap.add_argument("--la-n", type=int, default=16, help="rows for the Laplace predictive (0: skip it)")
    ap.add_argument("--la-train-n", type=int, default=64)
    ap.add_argument("--b-std", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--data-dir", default=None, help="paths.data_dir (default: BAYESLORA_DATA_DIR)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--from-json", action="store_true", help="redraw the Markdown from the JSON only")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{STEM}.json"
    if a.from_json:
        rep = json.loads(path.read_text())
    else:
        torch.set_num_threads(1)
        t_start = time.perf_counter()
        argv = sys.argv[1:]
        if "--out" in argv:  # where it writes is not part of what it ran
            i = argv.index("--out")
            argv = argv[:i] + argv[i + 2 :]
        adapter = Adapter(a.run_dir, a.b_std, a.seed)
        dataset = adapter.dataset() or a.dataset
        runs, settings = build_bodies({"fp32": FP32, "bf16": BF16}, adapter, dataset, a.n, a.data_dir, a.seed)
        print(f"bodies built ({time.perf_counter() - t_start:.0f} s); adapter {adapter.kind}", flush=True)
        meas = measure(runs, adapter, "fp32", a.n, a.k, a.scales, a.jac_rows, a.seed, a.scale_n or None)
        rep = {
            "command": ("python scripts/precision_probe.py " + " ".join(argv)).strip(),
            "dataset": dataset,
            "models": {"fp32": FP32, "bf16": BF16},
            "adapter": adapter.info(),
            **settings,
            "settings": vars(a) | {"out": None},
            "measure": meas,
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
            },
        }
        rep["wall_s"] = round(time.perf_counter() - t_start, 1)
        path.write_text(json.dumps(rep, indent=1) + "\n")  # before the Laplace part, in case it fails
        if a.la_n:
            t0 = time.perf_counter()
            rep["laplace"] = laplace_block(runs, adapter, dataset, a)
            rep["measure"]["timing_s"]["laplace"] = round(time.perf_counter() - t0, 1)
        else:
            rep["laplace_skipped"] = "Not run (`--la-n 0`)."

        rep["wall_s"] = round(time.perf_counter() - t_start, 1)
        path.write_text(json.dumps(rep, indent=1) + "\n")
    (out / f"{STEM}.md").write_text(to_markdown(rep))
    print(to_markdown(rep))


if __name__ == "__main__":
    main()
