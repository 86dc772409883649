"""``python -m airline_hpo.search``: the MLproject's ``hyperopt`` entry point (see :mod:`airline_hpo.search.driver`)."""

import sys

from airline_hpo.errors import run_cli
from airline_hpo.lifecycle import shutdown
from airline_hpo.search import driver

if __name__ == "__main__":
    shutdown.install()  # the process's signals, not a caller's: only when run as the entry point
    sys.exit(shutdown.closing(run_cli(driver.main, prog="search")))
