"""bayeslora: Bayesian LoRA fine-tuning of LLMs, reproducing the IVON-LoRA paper's Table 1."""

__version__ = "0.1.0"

from bayeslora.errors import BayesLoraError  # noqa: E402
from bayeslora.metrics import classification_metrics  # noqa: E402

__all__ = ["BayesLoraError", "classification_metrics", "__version__"]
