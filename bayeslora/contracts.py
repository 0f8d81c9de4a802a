"""What a predictive may ask of the method that trained the run: small runtime-checkable protocols.

A predictive names the one it needs in ``requires``; :meth:`Predictive.bind
<bayeslora.predictives.base.Predictive.bind>` checks it with :func:`require` when the run is set up,
and refuses the run with one line naming what is missing. A new method serves a predictive by
implementing the protocol; neither side imports the other.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import torch

from bayeslora.errors import ConfigError


@runtime_checkable
class GaussianPosterior(Protocol):
    """A diagonal Gaussian N(m, v) over the LoRA weights, flattened in ``lora_parameters`` order."""

    def posterior_mean(self) -> torch.Tensor: ...

    def posterior_variance(self) -> torch.Tensor: ...


@runtime_checkable
class Members(Protocol):
    """Named member adapters of one model, each made the active adapter by ``member(model, name)``."""

    members: list[str]

    def member(self, model: Any, name: str) -> AbstractContextManager[None]: ...


@runtime_checkable
class VariationalSites(Protocol):
    """Variational LoRA weights: ``sampled(generators)`` runs the model at weight samples (one
    generator per sample), ``mean()`` at the variational mean; ``sites`` lists the weights."""

    sites: list[Any]

    def sampled(self, generator: Any = None) -> AbstractContextManager[None]: ...

    def mean(self) -> AbstractContextManager[None]: ...


# protocol -> (what it is, in words; a method that has it)
DESCRIPTIONS: dict[type, tuple[str, str]] = {
    GaussianPosterior: ("a Gaussian posterior over the LoRA weights", "method=ivon"),
    Members: ("ensemble members", "method=ensemble"),
    VariationalSites: ("variational LoRA weights", "method=blob"),
}


def missing(method: Any, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``method`` lacks (empty, or falsy for a data member such as
    an ensemble's ``members`` list, counts as missing)."""
    names = sorted({*protocol.__annotations__, *(n for n in vars(protocol) if not n.startswith("_"))})
    out = []
    for name in names:
        value = getattr(method, name, None)
        if value is None or (not callable(value) and not value):
            out.append(name)
    return out


def require(method: Any, protocol: type | None, label: str) -> None:
    """Raise ConfigError unless ``method`` implements ``protocol`` (None: nothing required)."""
    if protocol is None:
        return
    lacking = missing(method, protocol)
    if not lacking:
        return
    what, example = DESCRIPTIONS.get(protocol, (protocol.__name__, "a method that implements it"))
    raise ConfigError(
        f"predictive {label!r} needs {what} ({example}; {protocol.__name__}: {', '.join(lacking)}), "
        f"which method={getattr(method, 'name', type(method).__name__)} does not have"
    )
