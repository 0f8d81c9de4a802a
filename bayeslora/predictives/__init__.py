"""Predictives: named ways to turn a trained run into probabilities ``[samples, batch, classes]``.

Each lives in one file with one ``conf/predictive/<name>.yaml``; a method's YAML composes the
predictives its run evaluates (its defaults list), and each becomes one table row.
"""

from bayeslora.predictives.base import TABLE_KEYS, EvalContext, Predictive, build_predictive

__all__ = ["TABLE_KEYS", "EvalContext", "Predictive", "build_predictive"]
