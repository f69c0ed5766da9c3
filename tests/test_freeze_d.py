"""FreezeD: every discriminator's blocks, counted from the input, and freezing the first of them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_cli.engine.networks import build_models
from gan_cli.errors import ConfigError
from gan_cli.models.equalized import EqualConv2d, EqualLinear
from gan_cli.models.freeze import freeze_input_blocks, input_blocks
from tests.conftest import compose_cfg

BATCH = 4
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear, EqualConv2d, EqualLinear)  # what reads the image (not class embeddings)
GRAY, RGB = (1, 16, 16), (3, 16, 16)

# id: (overrides, data kind, data shape, input shape, {D name: the shape of one sample D reads})
CASES = {
    "dcgan": (["model=dcgan", "model.d_width=8", "model.g_width=8"], "image", (1, 32, 32), None, {"D": (1, 32, 32)}),
    "dcgan-options": (["model=dcgan", "model.d_width=8", "model.g_width=8", "model.minibatch=discrimination",
                       "model.spectral_norm=d", "model.pack=2"], "image", RGB, None, {"D": RGB}),
    "mlp": (["model=mlp", "model.hidden_dim=32", "model.num_layers=2"], "image", GRAY, None, {"D": GRAY}),
    "mlp-points": (["model=mlp", "model.hidden_dim=16", "model.dropout=0.1", "model.minibatch=stddev"],
                   "points", (2,), None, {"D": (2,)}),
    "cgan-projection": (["model=cgan", "model.d_width=8", "model.g_width=8", "model.minibatch=stddev"],
                        "image", GRAY, None, {"D": GRAY}),
    "cgan-concat": (["model=cgan", "model.discriminator=concat", "model.d_width=8", "model.g_width=8"],
                    "image", GRAY, None, {"D": GRAY}),
    "cgan-projection-points": (["model=cgan", "model.hidden_dim=16", "model.minibatch=discrimination"],
                               "points", (2,), None, {"D": (2,)}),
    "resnet": (["model=resnet", "model.d_width=8", "model.g_width=8"], "image", (3, 32, 32), None,
               {"D": (3, 32, 32)}),
    "resnet-conditional": (["model=resnet", "model.d_width=8", "model.g_width=8", "model.conditional=true",
                            "model.minibatch=discrimination"], "image", GRAY, None, {"D": GRAY}),
    "sagan": (["model=sagan", "model.d_width=8", "model.g_width=8"], "image", (1, 32, 32), None,
              {"D": (1, 32, 32)}),
    "sagan-dcgan": (["model=sagan", "model.arch=dcgan", "model.attn_resolution=4", "model.d_width=8",
                     "model.g_width=8", "model.minibatch=stddev"], "image", GRAY, None, {"D": GRAY}),
    "stylegan": (["model=stylegan", "model.d_width=8", "model.g_width=8", "model.max_channels=16",
                  "model.latent_dim=16", "model.w_dim=16"], "image", GRAY, None, {"D": GRAY}),
    "progan": (["model=progan", "model.d_width=8", "model.g_width=8", "model.max_channels=16"], "image", GRAY,
               None, {"D": GRAY}),
    "biggan": (["model=biggan", "model.d_width=4", "model.g_width=4", "model.shared_dim=8"], "image",
               (3, 32, 32), None, {"D": (3, 32, 32)}),
    "pix2pix": (["model=pix2pix", "model.d_width=8", "model.g_width=8", "model.d_layers=2"], "paired", RGB, GRAY,
                {"D": (4, 16, 16)}),
    "cyclegan": (["model=cyclegan", "model.d_width=8", "model.g_width=8", "model.blocks=1", "model.d_layers=2"],
                 "unpaired", RGB, GRAY, {"D_a": GRAY, "D_b": RGB}),
}


def build_discriminators(case: str) -> list[tuple[nn.Module, tuple[int, ...]]]:
    overrides, kind, shape, input_shape, d_inputs = CASES[case]
    built = build_models(compose_cfg(*overrides).model, kind, shape, 10, input_shape)
    return [(built.networks[name], sample) for name, sample in d_inputs.items()]


def param_ids(module: nn.Module) -> list[int]:
    return [id(p) for p in module.parameters()]


def first_weight_layer_run(D: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """The first layer with weights that D's forward calls, class embeddings aside."""
    called: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, *_: called.append(m))
             for m in D.modules() if isinstance(m, WEIGHT_LAYERS)]
    with torch.no_grad():
        D(x, y)
    for hook in hooks:
        hook.remove()
    return called[0]


def check_blocks(D: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[nn.Module]:
    blocks = input_blocks(D)
    ids = [i for block in blocks for i in param_ids(block)]
    assert len(ids) == len(set(ids)), "a parameter is in two blocks"
    assert set(ids) == set(param_ids(D)), "the blocks leave out some of D's parameters"
    assert all(param_ids(block) for block in blocks), "a block without parameters"
    first = first_weight_layer_run(D, x, y)
    assert any(first is m for m in blocks[0].modules()), "the first block does not read the image"
    return blocks


def check_refusals(D: nn.Module, n: int) -> None:
    for k in (0, n, True, 1.0):
        with pytest.raises(ConfigError, match=rf"model\.freeze_d .* has {n} blocks .* got {k!r}"):
            freeze_input_blocks(D, k)
    assert all(p.requires_grad for p in D.parameters())


def check_one_step(D: nn.Module, blocks: list[nn.Module], k: int, x: torch.Tensor, y: torch.Tensor) -> None:
    """One Adam step over all of D's parameters on D's output leaves the first k blocks bit-identical and moves
    every other parameter with a gradient (gamma of a fresh self-attention is 0: its convs get none)."""
    frozen = set(freeze_input_blocks(D, k))
    before = {name: p.detach().clone() for name, p in D.named_parameters()}
    D.train()
    optimizer = torch.optim.Adam(D.parameters(), lr=1e-2)
    D(x, y).square().mean().backward()
    optimizer.step()
    params = dict(D.named_parameters())
    for name in frozen:
        assert params[name].grad is None and torch.equal(params[name], before[name]), name
    moved = {name for name, p in params.items() if not torch.equal(p, before[name])}
    with_grad = {name for name, p in params.items() if p.grad is not None and p.grad.abs().max() > 1e-6}
    assert with_grad - frozen <= moved and not moved & frozen
    names = {id(p): name for name, p in params.items()}
    for block in blocks[k:]:
        assert any(names[id(p)] in moved for p in block.parameters()), "a trainable block did not move"


@pytest.mark.parametrize("case", list(CASES))
def test_freeze_d(case):
    torch.manual_seed(0)
    for D, sample in build_discriminators(case):
        x, y = torch.randn(BATCH, *sample), torch.randint(0, 10, (BATCH,))
        blocks = check_blocks(D, x, y)
        check_refusals(D, len(blocks))
        first = set(param_ids(blocks[0]))
        assert freeze_input_blocks(D, 1) == [name for name, p in D.named_parameters() if id(p) in first]
        assert {id(p) for p in D.parameters() if not p.requires_grad} == first
        check_one_step(D, blocks, 1, x, y)
        check_one_step(D, blocks, len(blocks) - 1, x, y)  # all but the head; drops the gradients of the last step


def test_refusal_message_names_key_value_and_class():
    D = build_discriminators("dcgan")[0][0]
    with pytest.raises(ConfigError) as err:
        freeze_input_blocks(D, 9, key="finetune.freeze_d")
    assert str(err.value) == ("finetune.freeze_d must be an integer from 1 to 3 (this DCGANDiscriminator has 4 "
                              "blocks counted from the input; the last, its output layers, is never frozen), got 9.")


def test_discriminator_without_blocks_is_refused():
    with pytest.raises(ConfigError, match=r"model\.freeze_d=2 cannot be used with this Sequential"):
        freeze_input_blocks(nn.Sequential(nn.Linear(2, 1)), 2)
