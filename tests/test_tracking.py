"""The tracker is chosen by the logger config's ``_target_`` (configs/logger/)."""

from __future__ import annotations

from omegaconf import OmegaConf

from nac.harness.tracking import NullTracker, make_tracker
from tests.conftest import ROOT

CALLS: list = []


class ListTracker:
    """A user's tracker: remembers what it is given."""

    def __init__(self, run_config: dict, name: str, prefix: str = ""):
        self.run_config, self.name, self.prefix = run_config, name, prefix
        CALLS.append(("init", name, prefix))

    def log(self, metrics, step=None):
        CALLS.append(("log", metrics, step))

    def finish(self, record):
        CALLS.append(("finish", record["status"]))


def test_a_tracker_is_built_from_its_target_with_its_options():
    CALLS.clear()
    run_config = {"model": {"_target_": "baselines.rnn.LSTM", "units": 4}}  # not instantiated
    cfg = OmegaConf.create({"logger": {"_target_": f"{__name__}.ListTracker", "prefix": "p"}})
    tracker = make_tracker(cfg, run_config, name="run-1")
    assert isinstance(tracker, ListTracker) and tracker.run_config is run_config and tracker.prefix == "p"
    tracker.log({"loss": 1.0}, step=2)
    tracker.finish({"status": "ok"})
    assert CALLS == [("init", "run-1", "p"), ("log", {"loss": 1.0}, 2), ("finish", "ok")]


def test_the_shipped_none_logger_and_a_missing_logger_track_nothing():
    none = OmegaConf.load(ROOT / "configs" / "logger" / "none.yaml")
    assert isinstance(make_tracker(OmegaConf.create({"logger": none}), {}, "r"), NullTracker)
    assert isinstance(make_tracker(OmegaConf.create({}), {}, "r"), NullTracker)
