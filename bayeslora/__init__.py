"""bayeslora: Bayesian LoRA fine-tuning of LLMs, reproducing the IVON-LoRA paper's Table 1."""

import logging

__version__ = "0.1.0"

# bitsandbytes warns on every CPU import that an optional 4-bit kernel package is absent (unused here).
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from bayeslora.errors import BayesLoraError  # noqa: E402
from bayeslora.metrics import classification_metrics  # noqa: E402

__all__ = ["BayesLoraError", "classification_metrics", "__version__"]
