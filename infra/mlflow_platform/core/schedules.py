"""Checks for the day-two settings that Kubernetes or MLflow would reject only after `pulumi up`.

A CronJob with a schedule the controller cannot parse is accepted by the API server's schema (it is a string)
and then never runs; `mlflow gc --older-than` with an unparsable age fails in the pod at 3 a.m. Both are
checked here so `pulumi preview` names the key instead.
"""

from __future__ import annotations

import re

#: The macros Kubernetes' CronJob controller (robfig/cron's standard parser) accepts besides five fields.
CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (name, lowest, highest, names mapped to numbers from `lowest`, whether `?` is allowed)
_FIELDS = [
    ("minute", 0, 59, [], False),
    ("hour", 0, 23, [], False),
    ("day of month", 1, 31, [], True),
    ("month", 1, 12, _MONTHS, False),
    ("day of week", 0, 6, _DAYS, True),
]
_PART = re.compile(r"^(?P<range>\*|\?|[A-Za-z0-9]+(-[A-Za-z0-9]+)?)(/(?P<step>\d+))?$")
# MLflow's own `--older-than` grammar (mlflow/cli `gc`): #d#h#m#s, each optional, decimals allowed.
_AGE = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)


def _value(token: str, low: int, high: int, names: list[str]) -> int | None:
    if token.upper() in names:
        return names.index(token.upper()) + low
    if token.isdigit() and low <= int(token) <= high:
        return int(token)
    return None


def cron_problem(schedule: str) -> str | None:
    """Why the CronJob controller would refuse `schedule`, or None when it parses."""
    text = schedule.strip()
    if text in CRON_MACROS:
        return None
    if text.startswith(("TZ=", "CRON_TZ=")):
        return "must not carry a time zone (the CronJob's timeZone is set by the stack)"
    fields = text.split()
    if len(fields) != 5:
        return f"must have 5 fields (minute hour day-of-month month day-of-week) or be one of {sorted(CRON_MACROS)}"
    for text_field, (name, low, high, names, question) in zip(fields, _FIELDS, strict=True):
        for part in text_field.split(","):
            match = _PART.match(part)
            if not match:
                return f"has an invalid {name} field {text_field!r}"
            bounds = match.group("range")
            if bounds == "?" and not question:
                return f"allows '?' only in the day fields, not in the {name} field"
            if bounds not in ("*", "?"):
                ends = [_value(t, low, high, names) for t in bounds.split("-")]
                if None in ends or (len(ends) == 2 and ends[0] > ends[1]):  # type: ignore[operator]
                    return f"has a {name} field {text_field!r} that is not a value or range within {low}-{high}"
            step = match.group("step")
            if step is not None and int(step) == 0:
                return f"has a zero step in the {name} field"
    return _never_fires(fields)


# The most days each month can have (February in a leap year), for schedules that name impossible dates.
_MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def _expand(text_field: str, low: int, high: int, names: list[str]) -> set[int]:
    """The values a (valid) field selects: robfig/cron's `getRange` for each comma-separated part."""
    values: set[int] = set()
    for part in text_field.split(","):
        match = _PART.match(part)
        assert match is not None  # checked by the caller
        bounds, step = match.group("range"), int(match.group("step") or 1)
        if bounds in ("*", "?"):
            start, end = low, high
        else:
            ends = [_value(t, low, high, names) for t in bounds.split("-")]
            start = ends[0]  # type: ignore[assignment]
            end = ends[-1] if len(ends) == 2 or match.group("step") is None else high  # type: ignore[assignment]
        values.update(range(start, end + 1, step))  # type: ignore[arg-type]
    return values


def _never_fires(fields: list[str]) -> str | None:
    """A schedule that parses yet names no real date (`0 0 31 2 *`): the controller accepts it and never runs it.

    Only a restricted day of month with an unrestricted day of week can do that: when both are restricted,
    cron runs on either (robfig/cron `dayMatches`), and some weekday always comes.
    """
    dom, month, dow = fields[2], fields[3], fields[4]
    if dom in ("*", "?") or dow not in ("*", "?"):
        return None
    days = _expand(dom, 1, 31, [])
    months = _expand(month, 1, 12, _MONTHS)
    if any(day <= _MONTH_DAYS[m - 1] for m in months for day in days):
        return None
    return f"never fires: day of month {dom!r} does not occur in month {month!r}"


def age_seconds(age: str) -> float | None:
    """`30d`, `12h30m`, `1.5d` in seconds (MLflow's `--older-than` grammar), or None when it does not parse."""
    match = _AGE.match(age)
    if not age or not match:
        return None
    factors = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(v) * factors[k] for k, v in match.groupdict().items() if v)
