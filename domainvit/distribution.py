"""Is an input like what the model was trained on? One check before every prediction.

Every checkpoint records its training distribution in ``data_info["distribution"]``
(:meth:`domainvit.task.Task.data_info`): the modality and units of the training inputs,
their spacing or ground sampling distance, and robust summary statistics. What is
recorded and how an input is compared with it is each task's own definition (its
``distribution`` module); the mechanism is this one, shared by ``domainvit predict``, the
Python API (:func:`domainvit.engine.predict`) and the dashboard:

- a task compares an input with the record and returns :class:`Finding` s, the most
  fundamental difference first (sensor and band set before value ranges, modality before
  intensities), so the first one names the real cause;
- :meth:`InputGuard.check` turns them into an outcome: a *refusal* (the input cannot mean
  what the model expects: a CT to an MRI model, reflectance expected and digital numbers
  given) raises :class:`OutOfDistributionError` with one line naming what differs, unless
  the guard was built with ``force=True``; a *warning* (plausible but unusual: intensity
  quantiles far outside the training range, a spacing far from the training spacing) is
  written to stderr (or shown on the dashboard page) and the prediction goes on;
- the :class:`InputCheck` it returns goes into the output's sidecar
  (:meth:`InputCheck.record`), forced overrides included.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from domainvit.errors import UserError

__all__ = [
    "QUANTILES",
    "Finding",
    "InputCheck",
    "InputGuard",
    "OutOfDistributionError",
    "outside_quantiles",
    "quantile_shift",
    "quantiles",
    "refuse",
    "warn",
]

Level = Literal["refuse", "warn"]

#: the probabilities of the robust quantiles recorded for training inputs
QUANTILES = (0.005, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.995)

#: how a refusal can be overridden, named in every refusal message
OVERRIDE = ("override with --force (CLI), force=True (Python) or the dashboard's "
            "'Predict anyway' box")


@dataclass(frozen=True)
class Finding:
    """One difference between an input and the training distribution."""

    level: Level
    #: what differs, one word: ``modality``, ``bands``, ``units``, ``intensity``,
    #: ``spacing``, ``colour``, ``size``, ...
    aspect: str
    #: one line naming the difference, with the input's and the training values
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "aspect": self.aspect, "message": self.message}


def refuse(aspect: str, message: str) -> Finding:
    """A difference that means the input cannot be what the model expects."""
    return Finding("refuse", aspect, message)


def warn(aspect: str, message: str) -> Finding:
    """A difference that makes the input plausible but unusual for the model."""
    return Finding("warn", aspect, message)


@dataclass(frozen=True)
class InputCheck:
    """The outcome of checking one input."""

    input: str
    findings: tuple[Finding, ...] = ()
    #: refusals were overridden (``force``)
    forced: bool = False
    #: False when the checkpoint records no training distribution to compare with
    checked: bool = True

    @property
    def refusals(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "refuse")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warn")

    @property
    def outcome(self) -> str:
        """``"forced"`` (refused, predicted anyway), ``"warn"``, ``"ok"`` or
        ``"unchecked"``."""
        if self.refusals:
            return "forced"
        if self.warnings:
            return "warn"
        return "ok" if self.checked else "unchecked"

    def lines(self) -> list[str]:
        """Messages for people, refusals first, forced ones marked."""
        return [("predicted anyway (forced): " if f.level == "refuse" else "") + f.message
                for f in self.refusals + self.warnings]

    def record(self) -> dict[str, Any]:
        """The check as the output's sidecar records it."""
        return {
            "outcome": self.outcome,
            "checked": self.checked,
            "forced": self.forced,
            "refusals": [f.as_dict() for f in self.refusals],
            "warnings": [f.as_dict() for f in self.warnings],
        }


class OutOfDistributionError(UserError):
    """An input the model refuses; the message names what differs and how to override."""

    def __init__(self, check: InputCheck) -> None:
        self.check = check
        first = check.refusals[0]
        super().__init__(f"{check.input}: {first.message}. Not predicted: {OVERRIDE}.")


def _stderr(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()


@dataclass
class InputGuard:
    """The check before every prediction of one run.

    ``reference`` is the checkpoint's recorded training distribution (``None`` for a
    checkpoint that records none: inputs then pass unchecked, with one warning per run
    saying so). ``report`` receives every warning line (stderr by default).
    """

    reference: dict[str, Any] | None
    force: bool = False
    report: Callable[[str], None] = _stderr
    checks: list[InputCheck] = field(default_factory=list)
    _told_unchecked: bool = False

    @classmethod
    def from_meta(cls, meta: dict[str, Any], force: bool = False,
                  report: Callable[[str], None] | None = None) -> InputGuard:
        """The guard of a checkpoint, from its metadata (``read_meta``)."""
        reference = (meta.get("data_info") or {}).get("distribution")
        return cls(reference, force=force, **({"report": report} if report else {}))

    def check(self, name: str, compare: Callable[..., Iterable[Finding]],
              *args: Any) -> InputCheck:
        """Check the input ``name``: ``compare(reference, *args)`` lists its findings,
        most fundamental first. Raises :class:`OutOfDistributionError` on a refusal
        unless forced; reports warnings (and forced refusals); returns the check."""
        if self.reference is None:
            if not self._told_unchecked:
                self.report("the checkpoint records no training distribution, so inputs "
                            "are not checked against it (`domainvit data-info` adds one)")
                self._told_unchecked = True
            result = InputCheck(name, checked=False)
        else:
            findings = tuple(compare(self.reference, *args))
            ordered = (tuple(f for f in findings if f.level == "refuse")
                       + tuple(f for f in findings if f.level == "warn"))
            result = InputCheck(name, ordered, forced=self.force and any(
                f.level == "refuse" for f in ordered))
            if result.refusals and not self.force:
                raise OutOfDistributionError(result)
            for line in result.lines():
                self.report(f"{name}: {line}")
        self.checks.append(result)
        return result


# --- statistics shared by the tasks' records ---------------------------------------------


def quantiles(values: np.ndarray, max_samples: int = 2_000_000, seed: int = 0) -> list[float]:
    """The :data:`QUANTILES` of the finite ``values`` (a fixed random subsample of at most
    ``max_samples`` for large arrays), as plain floats; empty when none is finite."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return []
    if flat.size > max_samples:
        flat = np.random.default_rng(seed).choice(flat, max_samples, replace=False)
    return [float(v) for v in np.quantile(flat, QUANTILES)]


def quantile_shift(values: Sequence[float], reference: Sequence[float]) -> float:
    """How far the quantiles ``values`` lie from the ``reference`` quantiles (both at
    :data:`QUANTILES`), in units of the reference's 5-95% range: the largest distance
    over the 1%..99% quantiles. 0 for identical distributions; above 1 the input's
    distribution has moved by more than the training's whole central range."""
    values, reference = np.asarray(values, float), np.asarray(reference, float)
    if values.shape != reference.shape or values.size != len(QUANTILES):
        raise ValueError("quantile_shift needs two lists of len(QUANTILES) quantiles")
    low, high = QUANTILES.index(0.05), QUANTILES.index(0.95)
    scale = max(reference[high] - reference[low], 1e-12)
    inner = slice(QUANTILES.index(0.01), QUANTILES.index(0.99) + 1)
    return float(np.max(np.abs(values[inner] - reference[inner])) / scale)


def outside_quantiles(value: float, reference: Sequence[float], widen: float = 0.5,
                      ) -> tuple[float, float] | None:
    """For a per-input statistic ``value`` against the :data:`QUANTILES` of the same
    statistic over the training inputs: ``None`` when it lies within their 0.5-99.5% range
    widened by ``widen`` times that range on either side, else the (unwidened) range, for
    the message."""
    low, high = reference[0], reference[-1]
    margin = widen * (high - low)
    return None if low - margin <= value <= high + margin else (low, high)
