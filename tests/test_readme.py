"""The README names every shipped experiment, so a researcher reading it finds each one."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_every_experiment_config_is_named_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    named = set()
    for match in re.finditer(r"experiment=([\w|]+)", readme):
        named.update(match.group(1).split("|"))
    shipped = {path.stem for path in (ROOT / "configs" / "experiment").glob("*.yaml")}
    assert shipped, "no experiment configs found"
    missing = sorted(shipped - named)
    assert not missing, f"experiments the README never names (as experiment=<name>): {missing}"
