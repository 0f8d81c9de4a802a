"""Predictives: named ways to turn a trained run into probabilities ``[samples, batch, classes]``.

Each lives in one file with one ``conf/predictive/<name>.yaml``; a method's YAML lists the
predictives its run evaluates, and each becomes one table row.
"""

from bayeslora.predictives.base import EvalContext, Predictive

__all__ = ["EvalContext", "Predictive"]
