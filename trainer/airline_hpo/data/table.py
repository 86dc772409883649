"""Which table, which target, which columns: the ``data`` part of a search spec, as the loader needs it.

``target`` is a 0/1 column (``ArrDelayBinary``) or a column with a threshold (``ArrDelay > 15``: 1 where the
comparison holds). ``time_column`` orders the rows (one datetime or number column, or several columns that
make a date together, such as ``[Year, Month, DayofMonth]``); without it only a random split is possible.
``exclude`` lists the columns not known at decision time: a model that reads any of them never becomes
champion (:mod:`airline_hpo.model.promotion`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from airline_hpo.data.schema import LABEL
from airline_hpo.errors import TrainerError

#: Comparisons a threshold target may use.
COMPARISONS: dict[str, Callable] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_THRESHOLD = re.compile(r"^\s*(?P<column>[^<>=!]+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>-?[0-9.eE+-]+)\s*$")

#: The airline table's date columns and its columns known only after landing.
AIRLINE_DATE = ("Year", "Month", "DayofMonth")
AIRLINE_POST_LANDING = ("ActualElapsedTime", "Diverted")


@dataclass(frozen=True)
class Target:
    column: str
    op: str | None = None
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        text = str(text).strip()
        if not re.search(r"[<>=!]", text):
            if not text:
                raise TrainerError("data.target is empty", "name a 0/1 column, or a column and a threshold: Col > 15")
            return cls(text)
        match = _THRESHOLD.match(text)
        if match is None:
            raise TrainerError(
                f"data.target {text!r} is neither a column nor a comparison with a number",
                "write a 0/1 column name, or e.g. `ArrDelay > 15` (one of > >= < <= == !=)",
            )
        return cls(match["column"].strip(), match["op"], float(match["value"]))

    def __str__(self) -> str:
        return self.column if self.op is None else f"{self.column} {self.op} {self.value:g}"


@dataclass(frozen=True)
class TableSpec:
    uri: str
    target: Target
    time_columns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def is_airline(self) -> bool:
        """The RAPIDS airline schema: read by the airline loader (S3 column ranges, cuDF, its own checks)."""
        return (self.target, self.time_columns, self.exclude) == (Target(LABEL), AIRLINE_DATE, AIRLINE_POST_LANDING)


def airline(uri: str) -> TableSpec:
    return TableSpec(uri, Target(LABEL), AIRLINE_DATE, AIRLINE_POST_LANDING)
