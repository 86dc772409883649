"""``python -m airline_hpo.lifecycle.replay <parent_run_id>``: put a search's journaled trials back into MLflow.

The command beside :mod:`airline_hpo.lifecycle.journal` (which stays free of the pre-check it calls first), for the
rare case a user wants the replay alone; a resumed search replays its journal by itself.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from airline_hpo.errors import OneLineParser, run_cli
from airline_hpo.lifecycle import precheck
from airline_hpo.lifecycle.journal import replay


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="journal", description="replay a search's trial journal into MLflow")
    parser.add_argument("parent_run_id", help="the parent run the journal belongs to")
    args = parser.parse_args(argv)
    precheck.check_tracking_uri()
    print(replay(args.parent_run_id).line(args.parent_run_id))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
