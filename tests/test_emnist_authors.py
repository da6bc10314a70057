"""The NAC authors' E-MNIST pipeline as one config (experiment=emnist_authors, dataset=emnist_authors).

Each setting the authors' script (mnist_exp/mnist_kfold.py) uses is checked here against the value
written out from that script, not against the code under test: padded events fed as data, t = 1,
Keras 'same' padding and initialisation, the 170-unit NAC backbone, baselines without elapsed time,
AdamW with Keras' defaults, the paper protocol.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from nac.data import emnist
from nac.harness.runner import build_model
from nac.models.factory import model_name
from nac.models.stems import ConvStem
from tests.conftest import CONFIGS
from tests.test_emnist import CLEAN, DATA_ROOT, needs_mnist


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


# ---------------------------------------------------------------- the data as the authors fed it


@needs_mnist
def test_authors_input_feeds_padding_as_data_with_unit_time(tmp_path):
    masked = emnist.build(CLEAN, DATA_ROOT, cache_dir=tmp_path, limit=50)
    authors = emnist.build(CLEAN, DATA_ROOT, cache_dir=tmp_path, limit=50, input_mode="authors")
    for split in ("train", "val", "test"):
        a, m = getattr(authors, split), getattr(masked, split)
        assert torch.equal(a.x, m.x) and torch.equal(a.y, m.y)  # the same events, padding (0, 0) included
        assert bool(a.mask.all())  # every one of the 256 events is data
        assert torch.equal(a.t, torch.ones_like(a.t))  # t = 1 everywhere
        assert not bool(m.mask.all())  # the masked mode does mark padding
    assert authors.meta.extra["input_mode"] == "authors" and masked.meta.extra["input_mode"] == "masked"


@needs_mnist
def test_unknown_input_mode_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"input_mode='keras' is not valid; use one of masked, authors"):
        emnist.build(CLEAN, DATA_ROOT, cache_dir=tmp_path, limit=10, input_mode="keras")


# ---------------------------------------------------------------- the stem as Keras pads it


def test_keras_same_padding_matches_the_hand_computed_pads():
    """Keras 'same' with kernel 5, stride 5: 256 -> 52 steps padded (2, 2), 52 -> 11 padded (1, 2)
    (total (ceil(L/s)-1)*s + k - L, smaller half on the left); written out with F.conv1d."""
    torch.manual_seed(0)
    stem = ConvStem(2, [64, 64], kernel_size=5, stride=5, padding="keras", keep_time=False)
    x = torch.randn(3, 256, 2)
    out, t, mask = stem(x, torch.ones(3, 256), torch.ones(3, 256, dtype=torch.bool))
    c1, c2 = stem.convs
    h = F.relu(F.conv1d(F.pad(x.transpose(1, 2), (2, 2)), c1.weight, c1.bias, stride=5))
    assert h.shape[-1] == 52
    h = F.relu(F.conv1d(F.pad(h, (1, 2)), c2.weight, c2.bias, stride=5))
    assert h.shape[-1] == 11
    torch.testing.assert_close(out, h.transpose(1, 2), rtol=1e-5, atol=1e-6)
    assert t is None and mask.shape == (3, 11) and bool(mask.all())


def test_left_padding_differs_from_keras_on_the_second_layer():
    """The default stem pads (2, 2) then (2, 1): not Keras' (1, 2), so the two settings differ."""
    torch.manual_seed(0)
    keras = ConvStem(2, [8, 8], kernel_size=5, stride=5, padding="keras")
    left = ConvStem(2, [8, 8], kernel_size=5, stride=5)
    left.load_state_dict(keras.state_dict())
    x = torch.randn(2, 256, 2)
    assert not torch.allclose(keras(x)[0], left(x)[0])
    assert torch.equal(
        keras.convs[0](F.pad(x.transpose(1, 2), (2, 2))), left.convs[0](F.pad(x.transpose(1, 2), (2, 2)))
    )


def test_keras_init_is_glorot_uniform_with_zero_bias():
    torch.manual_seed(0)
    stem = ConvStem(2, [64, 64], kernel_size=5, stride=5, init="keras")
    for conv in stem.convs:
        fan_in, fan_out = conv.in_channels * 5, conv.out_channels * 5
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = conv.weight.detach()
        assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
        assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.1 * bound  # uniform(-b, b) has std b / sqrt(3)
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    with pytest.raises(ValueError, match=r"stem.init='glorot' is not valid; use one of torch, keras"):
        ConvStem(2, [4], init="glorot")
    with pytest.raises(ValueError, match=r"stem.padding='same' is not valid"):
        ConvStem(2, [4], padding="same")


# ---------------------------------------------------------------- the composed pipeline


def test_authors_experiment_has_every_setting_of_the_authors_script():
    cfg = _compose("experiment=emnist_authors")
    # protocol: StratifiedKFold(5, shuffle=True, random_state=42), checkpoint on the reported fold
    assert cfg.protocol.name == "paper" and (cfg.protocol.n_folds, cfg.protocol.split_seed) == (5, 42)
    assert list(cfg.hydra.sweeper.params.values()) == ["0,1,2,3,4"]
    # NAC(d_model=64, num_heads=16, mode='euler', delta_t=1.5, sparsity=0.7, topk=10, euler_steps=6)
    m = cfg.model
    assert model_name(cfg) == "nac_official" and m.variant == "official"
    assert (m.d_model, m.num_heads, m.topk, m.mode, m.euler_steps, m.delta_t, m.sparsity) == (
        64,
        16,
        10,
        "euler",
        6,
        1.5,
        0.7,
    )
    assert m.backbone_units == 64 + math.floor(64 / 0.6) == 170
    assert m.time_input == "constant" and m.t_const == 1.0
    # data: padded events as data, no time, Keras padding / init
    assert cfg.dataset.builder.input_mode == "authors" and cfg.dataset.elapsed_time is False
    assert (cfg.dataset.stem.padding, cfg.dataset.stem.keep_time, cfg.dataset.stem.init) == ("keras", False, "keras")
    assert cfg.dataset.stem.channels == [64, 64] and (cfg.dataset.stem.kernel_size, cfg.dataset.stem.stride) == (5, 5)
    assert cfg.dataset.head.hidden == [32] and cfg.dataset.head.init == "keras"
    # AdamW(learning_rate=0.001): Keras defaults weight_decay 0.004, epsilon 1e-7; batch 32; 75 epochs
    opt = cfg.trainer.optimizer
    assert opt._target_ == "torch.optim.AdamW" and (opt.lr, opt.weight_decay, opt.eps) == (1e-3, 0.004, 1e-7)
    assert (cfg.trainer.batch_size, cfg.trainer.epochs) == (32, 75)
    # ReduceLROnPlateau(monitor='val_accuracy', factor=0.3, patience=3, min_lr=1e-10, mode='max')
    sch = cfg.trainer.scheduler
    assert (sch.factor, sch.patience, sch.min_lr, sch.threshold, sch.threshold_mode) == (0.3, 3, 1e-10, 1e-4, "abs")
    assert cfg.trainer.early_stopping_patience is None


@pytest.mark.parametrize("model", ["nac", "lstm", "gru", "rnn", "cfc"])
def test_other_models_run_the_same_pipeline_without_time(model):
    cfg = _compose("experiment=emnist_authors", f"model={model}")
    assert model_name(cfg) == model and cfg.dataset.builder.input_mode == "authors"
    if model in ("lstm", "gru", "rnn"):
        assert cfg.model.time_as_input is False  # RNN(LSTMCell(64)): no time column
    torch.manual_seed(0)
    net = build_model(cfg, input_dim=2, output_dim=10)
    seen = {}
    net.sequence_model.register_forward_pre_hook(lambda mod, args: seen.update(t=args[1]))
    x = torch.rand(2, 256, 2)
    net(x, torch.ones(2, 256), torch.ones(2, 256, dtype=torch.bool))
    assert seen["t"] is None  # models see unit steps, as Keras models given no time did
    if model == "nac":
        assert sum(net.sequence_model.backbone.sizes[1:]) == 170  # inter + command + motor neurons


def test_padding_events_change_the_output_as_in_the_authors_model():
    """With no mask the 11th step is read out, and it sees the padding events (0, 0) at the end:
    changing an event in the last block changes the prediction (it would not with the mask)."""
    cfg = _compose("experiment=emnist_authors", "model=lstm")
    torch.manual_seed(0)
    net = build_model(cfg, input_dim=2, output_dim=10).eval()
    x = torch.zeros(1, 256, 2)
    x[0, :40, 0], x[0, :40, 1] = 1.0, 6.4  # 40 real events, then padding
    ones, all_valid = torch.ones(1, 256), torch.ones(1, 256, dtype=torch.bool)
    x2 = x.clone()
    x2[0, 250] = torch.tensor([1.0, 1.0])
    with torch.no_grad():
        assert not torch.allclose(net(x, ones, all_valid), net(x2, ones, all_valid))
        masked = all_valid.clone()
        masked[0, 40:] = False
        # the masked pipeline (dataset=emnist) reads out the last real step instead: the tail does not matter
        cfg_m = _compose("experiment=none", "dataset=emnist", "model=lstm")
        torch.manual_seed(0)
        net_m = build_model(cfg_m, input_dim=2, output_dim=10).eval()
        assert torch.allclose(net_m(x, ones, masked), net_m(x2, ones, masked))


def test_authors_clean_experiment_is_the_same_pipeline_under_the_clean_protocol():
    paper, clean = _compose("experiment=emnist_authors"), _compose("experiment=emnist_authors_clean")
    assert clean.protocol.name == "clean" and list(clean.hydra.sweeper.params.values()) == ["0,1,2"]
    for key in ("dataset", "model", "trainer"):
        assert paper[key] == clean[key], key
