"""The sequence-model contract sits below the layers and the models (nac/contract.py): importing the
NAC layer or a baseline loads nothing from nac.models, and nac.models.contract re-exports the same objects."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # end-to-end: processes, sweeps, a cluster (pytest -m 'not slow' skips them)


@pytest.mark.parametrize("module", ["nac.layers.nac", "baselines.cfc", "baselines.transformer", "baselines.rnn"])
def test_layer_and_baselines_do_not_import_nac_models(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('nac.models')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_models_contract_reexports_the_contract():
    import nac.contract
    import nac.models.contract

    assert nac.models.contract.SequenceModel is nac.contract.SequenceModel
    assert nac.models.contract.last_valid_step is nac.contract.last_valid_step
