"""Training procedures: one file per method, built from ``conf/method/<name>.yaml`` via ``_target_``."""

from bayeslora.methods.base import Method

__all__ = ["Method"]
