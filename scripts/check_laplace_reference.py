"""Run the authors' own Laplace code on the tiny LoRA model and compare with bayeslora's Laplace.

Not a test (the reference code is not on PyPI): a one-off check that the default conventions are the
reference's. It needs checkouts of adamxyang/laplace-lora (its ``laplace`` fork) and
kazukiosawa/asdl (the ASDL backend that fork imports as ``asdl``), put first on the path:

    python scripts/check_laplace_reference.py /path/to/laplace-lora /path/to/asdl

It prints, per LoRA matrix, the largest relative difference of the KFAC factors (G, A under
``examples``, A under ``tokens``), the log marginal likelihood at λ = 0.7, the tuned prior precision
and the linearised logit covariance of KronLaplace and DiagLaplace against ours, on padded batches.
"""

import sys
import tempfile
import warnings
from pathlib import Path

sys.path[:0] = [*sys.argv[1:3], str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings("ignore")
import laplace  # noqa: E402
import torch  # noqa: E402

assert laplace.__file__.startswith(sys.argv[1]), laplace.__file__
from laplace import Laplace  # noqa: E402

from bayeslora.config import compose_config  # noqa: E402
from bayeslora.data import eval_batches  # noqa: E402
from bayeslora.predictives.laplace import Posterior, capture, fit_curvature, lora_modules  # noqa: E402
from bayeslora.runner import fit, setup  # noqa: E402
from tests.test_laplace import TRAINED  # noqa: E402  (the test's run: the repo root is on the path)

tmp = tempfile.mkdtemp()
cfg = compose_config(
    [
        "model=tiny",
        "dataset=synthetic",
        "debug=fast",
        f"paths.root={tmp}",
        "trainer.num_threads=1",
        "dataset.source.n_train=64",
        "dataset.source.n_validation=32",
        "dataset.source.n_shifted=16",
        "trainer.device=cpu",
        *TRAINED,
    ]
)
# the tiny AdamW run of tests/test_laplace.py's `trained` fixture, set up and trained by the runner
run = setup(cfg)
fit(run, loggers=[])
model, task, ctx = run.model, run.task, run.ctx
model.eval()
batches = [b for _, b in eval_batches(task.evals["validation"], 4, task.pad_id, 1)][:3]
# make the padding visible: shuffle rows across batches so lengths differ within a batch
ex = [
    (b["input_ids"][i][b["attention_mask"][i].bool()], b["labels"][i])
    for b in batches
    for i in range(len(b["labels"]))
]
ex = [ex[i] for i in [0, 11, 5, 3, 8, 1, 10, 6, 2, 9, 4, 7]]
batches = []
for s in range(0, 12, 4):
    rows = [(r[0][2 * j :], r[1]) for j, r in enumerate(ex[s : s + 4])]
    T = max(len(r[0]) for r in rows)  # drop 0,2,4,6 leading tokens: rows of different lengths
    ids = torch.full((4, T), task.pad_id)
    mask = torch.zeros(4, T, dtype=torch.long)
    for j, (r, _) in enumerate(rows):
        ids[j, T - len(r) :] = r
        mask[j, T - len(r) :] = 1
    batches.append({"input_ids": ids, "attention_mask": mask, "labels": torch.stack([r[1] for r in rows])})
print(
    "pads per batch",
    [int((b["attention_mask"] == 0).sum()) for b in batches],
    "lengths",
    [b["input_ids"].shape[1] for b in batches],
)


class Wrapped(torch.nn.Module):  # as run_gpt_laplace.py's WrappedModel: forward(**batch) -> class logits
    def __init__(self):
        super().__init__()
        self.model = model

    def forward(self, **kw):
        kw.pop("labels", None)
        return ctx.logits(kw)


class Loader:
    dataset = range(12)

    def __iter__(self):
        return iter(batches)


w = Wrapped().eval()
names = [n for n, _ in lora_modules(model)]
curv = fit_curvature(ctx, batches)  # defaults: pads included in A


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def reference(structure):
    """The reference's Laplace of the wrapped model at prior precision 1, fitted on the padded batches."""
    la = Laplace(
        w, "classification", prior_precision=1.0, subset_of_weights="all", hessian_structure=structure
    )
    la.fit(Loader())
    return la


def compare_prior(la, ours):
    """Print the log marginal likelihood at λ = 0.7 and the tuned prior precision, reference vs ours."""
    print(
        "  lml(0.7) ref",
        float(la.log_marginal_likelihood(prior_precision=lam)),
        "ours",
        float(ours.log_marginal_likelihood(torch.tensor(0.7, dtype=torch.float64))),
    )
    la.prior_precision = 1.0
    lam_ref = float(la.optimize_prior_precision(method="marglik", n_steps=100, lr=1e-1))
    print("  tuned prior ref", lam_ref, "ours", ours.tune_prior(1.0, 0.1, 100)[-1])


lam = torch.tensor([0.7])
la = reference("kron")
post = Posterior(curv, "kfac")
print("KFAC: max rel diff G, A(examples), A(tokens):")
tok = Posterior(fit_curvature(ctx, batches, mask_pads=True), "kfac")
for n, F in zip(names, la.H_facs.kfacs):
    print(
        f"  {n.split('model.model.')[-1]:45s} G {rel(curv.G[n], F[0]):.1e}  A {rel(post.input_factor(n), F[1]):.1e}  A_tokens {rel(tok.input_factor(n), F[1]):.1e}"
    )
compare_prior(la, post)
b = batches[0]
f_mu, f_var = la._glm_predictive_distribution(b)
cap = capture(ctx, lora_modules(model), b)
print(
    "  logit cov rel diff",
    rel(post.logit_covariance(cap), f_var),
    " mean diff",
    float((f_mu - cap.logits).abs().max()),
)

la = reference("diag")
pd, pe = Posterior(curv, "diag"), Posterior(curv, "diag", "exact")
d_tok = torch.cat([curv.diag_token[n].flatten() for n in names])
d_ex = torch.cat([curv.diag[n].flatten() for n in names])
print("DIAG: rel diff per_token", rel(d_tok, la.H), " exact", rel(d_ex, la.H))
compare_prior(la, pd)
f_mu, f_var = la._glm_predictive_distribution(b)
print("  logit cov rel diff", rel(pd.logit_covariance(cap), f_var))
