"""The trial runner's background tracking writes, and the benchmark's measurements."""

from __future__ import annotations

import pytest
from airline_hpo.data import loading as data_mod
from airline_hpo.data import splits
from airline_hpo.errors import TrainerError
from airline_hpo.model.engines import ForestParams, SklearnEngine
from airline_hpo.search.trials import InProcessTrialRunner, TrialSpec

from benchmarks import search_overhead


class _DeadClient:
    """A tracking client whose server has gone away after the search started."""

    def create_run(self, *_args, **_kwargs):
        raise ConnectionError("Connection refused\nsecond line of detail")

    def log_batch(self, *_args, **_kwargs):
        raise AssertionError("never reached: the run was not created")

    def set_terminated(self, *_args, **_kwargs):
        raise AssertionError("never reached")


def test_tracking_failure_surfaces_as_one_line_error(small_airline):
    split = splits.make_split(data_mod.load_dataset(str(small_airline)), seed=0)
    runner = InProcessTrialRunner(SklearnEngine(), split, 0, "0", "parent", client=_DeadClient())
    outcome = runner.run(TrialSpec(1, ForestParams(n_estimators=3, max_depth=3)))
    assert outcome.ok and outcome.accuracy > 0  # the fit itself does not wait for tracking
    with pytest.raises(TrainerError) as caught:
        runner.flush()
    assert caught.value.exit_code == 1
    assert "Connection refused" in str(caught.value) and "\n" not in str(caught.value)


def test_configurations_are_seeded_draws_from_the_search_space():
    first = search_overhead.configurations(5, trees_max=40, depth_max=8, seed=1)
    assert first == search_overhead.configurations(5, trees_max=40, depth_max=8, seed=1)
    assert first != search_overhead.configurations(5, trees_max=40, depth_max=8, seed=2)
    assert all(10 <= c.n_estimators <= 40 and 3 <= c.max_depth <= 8 for c in first)


def test_overhead_share():
    assert search_overhead.Timing(wall=2.0, fit=1.8, predict=0.1).overhead_share == pytest.approx(0.05)
    assert search_overhead.Timing(wall=1.0, fit=1.0, predict=0.0).overhead_share == 0.0


@pytest.mark.integration
def test_both_ways_measure_real_trials(stack_env, small_airline):
    configs = search_overhead.configurations(2, trees_max=10, depth_max=4, seed=0)
    load, ours, closing = search_overhead.our_way(str(small_airline), configs, seed=0)
    seeds = search_overhead.seed_way(str(small_airline), configs, seed=0)
    assert load > 0 and closing > 0 and len(ours) == len(seeds) == 2
    for timing in [*ours, *seeds]:
        assert timing.fit > 0 and timing.wall >= timing.fit + timing.predict
    table = search_overhead.report(3000, load, ours, closing, seeds)
    assert "overhead share (mean)" in table and "seed way / this trainer" in table
