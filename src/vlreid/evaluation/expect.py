"""``reid evaluate --expect NAME=VALUE:TOLERANCE``: regression checks on the reported figures.

fast-reid's ``TEST.EXPECTED_RESULTS`` is the precedent: CI evaluates a known checkpoint and fails
when a figure leaves its range. Figures are the keys of
:meth:`~vlreid.evaluation.metrics.RankingResult.summary` (``mAP``, ``rank1``, ``rank5``,
``rank10``, ``mINP``), as fractions in [0, 1]; the range is ``[VALUE - TOLERANCE, VALUE +
TOLERANCE]``, bounds included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vlreid.errors import ReIDError

FIGURES: tuple[str, ...] = ("mAP", "rank1", "rank5", "rank10", "mINP")


@dataclass(frozen=True)
class Expectation:
    """One expected figure.

    Attributes:
        name: A key of :data:`FIGURES`.
        value: Expected value, in [0, 1].
        tolerance: Allowed absolute deviation, >= 0.
    """

    name: str
    value: float
    tolerance: float

    @property
    def low(self) -> float:
        """Lowest accepted value."""
        return self.value - self.tolerance

    @property
    def high(self) -> float:
        """Highest accepted value."""
        return self.value + self.tolerance

    def holds(self, measured: float) -> bool:
        """Whether ``measured`` is in the range (a small float slack for decimal bounds)."""
        slack = 1e-12
        return self.low - slack <= measured <= self.high + slack

    def describe(self, measured: float) -> str:
        """``mAP 0.5431 outside [0.5420, 0.5620] (0.552 +- 0.01)``, or ``... within ...``."""
        verdict = "within" if self.holds(measured) else "outside"
        return (
            f"{self.name} {measured:.4f} {verdict} [{self.low:.4f}, {self.high:.4f}] "
            f"({self.value:g} +- {self.tolerance:g})"
        )


def parse_expectation(text: str) -> Expectation:
    """``"mAP=0.552:0.01"`` -> :class:`Expectation`.

    Raises:
        ReIDError: Not ``NAME=VALUE:TOLERANCE``, an unknown name, a value outside [0, 1] or a
            negative tolerance.
    """
    name, equals, rest = text.partition("=")
    value_text, colon, tolerance_text = rest.partition(":")
    try:
        if not (equals and colon):
            raise ValueError
        value, tolerance = float(value_text), float(tolerance_text)
    except ValueError:
        raise ReIDError(
            f"--expect {text!r}: expected NAME=VALUE:TOLERANCE, e.g. mAP=0.552:0.01"
        ) from None
    name = name.strip()
    if name not in FIGURES:
        raise ReIDError(f"--expect {text!r}: unknown figure {name!r}; expected one of {FIGURES}")
    if not 0.0 <= value <= 1.0 or tolerance < 0.0:
        raise ReIDError(
            f"--expect {text!r}: VALUE must be a fraction in [0, 1] (mAP=0.552, not 55.2) and "
            "TOLERANCE >= 0"
        )
    return Expectation(name, value, tolerance)


def failed_expectations(
    summary: Mapping[str, float], expectations: Sequence[Expectation]
) -> list[str]:
    """One description per expectation that ``summary`` misses (empty when all hold)."""
    return [
        expectation.describe(summary[expectation.name])
        for expectation in expectations
        if not expectation.holds(summary[expectation.name])
    ]
