"""BigGAN (model=biggan): hierarchical z, shared class embedding, projection D, orthogonal
regularisation, the model file's defaults, exact resume and bad input."""
import json

import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn.utils import parametrize

from gan_cli.engine.trainer import train
from gan_cli.errors import ConfigError
from gan_cli.games.biggan import orthogonality, ortho_weights
from gan_cli.models import biggan
from tests.conftest import FAST, compose_cfg
from tests.test_resume import differences, full_and_resumed

TINY = ["model=biggan", "model.g_width=4", "model.d_width=4", "model.latent_dim=12", "model.shared_dim=8",
        "dataset=digits", "dataset.resolution=16", "trainer.threads=1"]


def tiny(resolution: int = 16, **kw) -> biggan.Networks:
    torch.manual_seed(0)
    options = {"latent_dim": 12, "shared_dim": 8, "g_width": 4, "d_width": 4, **kw}
    return biggan.build((1, resolution, resolution), 10, **options)


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("resolution", [16, 32])
def test_trains_and_saves_a_finite_checkpoint(tmp_path, resolution):
    result = train(compose_cfg(*FAST, *TINY, f"dataset.resolution={resolution}"), tmp_path)
    assert result["step"] == 4
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)
    for part in ("networks", "ema"):
        for net in state[part].values():
            assert all(torch.isfinite(v).all() for v in net.values() if v.is_floating_point())
    assert state["ema"]["G"], "trainer=biggan keeps an EMA of G"
    assert not any("penalty/ortho" in row for row in rows(tmp_path)), "ortho_weight=0 is off"
    assert list((tmp_path / "samples").glob("step_*.png"))


def test_hierarchical_z_shared_embedding_and_spectral_norm():
    models = tiny(32)
    G, D = models.generator, models.discriminator
    assert G.conditional and D.conditional and G.truncation == "z" and G.latent_dim == 12
    assert G.chunks == 4  # the 4x4 input and three up-blocks (8, 16, 32)
    G.eval()
    z, y = torch.randn(2, 12), torch.tensor([3, 7])
    with torch.no_grad():
        base = G(z, y)
        for chunk in torch.tensor_split(torch.arange(12), G.chunks):
            moved = z.clone()
            moved[:, chunk] += 1.0
            assert not torch.allclose(G(moved, y), base, atol=1e-5), f"z chunk {chunk.tolist()} is unused"
    # every conditional BN reads [its z chunk, shared(y)] from the one shared embedding
    seen = []
    cbns = [m for m in G.modules() if isinstance(m, biggan.ClassConditionalBatchNorm2d)]
    hooks = [m.gain.register_forward_hook(lambda mod, args, out: seen.append(args[0])) for m in cbns]
    G.train()
    G(z, y).sum().backward()
    for h in hooks:
        h.remove()
    assert len(seen) == len(cbns) == 6
    shared = G.shared(y).detach()
    assert all(torch.equal(cond[:, -8:], shared) for cond in seen)
    assert G.shared.weight.grad is not None and G.shared.weight.grad.abs().sum() > 0
    assert sum(isinstance(m, nn.Embedding) for m in G.modules()) == 1
    # spectral norm on every conv / linear of G and D and on D's embedding, not on G's shared embedding
    for net in (G, D):
        layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
        plain = [m for m in layers if not parametrize.is_parametrized(m, "weight")]
        assert plain == ([G.shared] if net is G else [])
    assert parametrize.is_parametrized(D.embed, "weight")


def test_labels_change_g_output_and_d_projection():
    models = tiny()
    G, D = models.generator.eval(), models.discriminator
    z = torch.randn(1, 12).expand(2, 12)
    with torch.no_grad():
        out = G(z, torch.tensor([0, 1]))
        assert not torch.allclose(out[0], out[1], atol=1e-5)
        x = out[:1].expand(2, -1, -1, -1)
        logits = D(x, torch.tensor([0, 1]))
        assert abs(logits[0] - logits[1]) > 1e-6
        h = nn.functional.relu(D.blocks(x)).sum((2, 3))
        assert torch.allclose(logits - D.linear(h).squeeze(1), (D.embed(torch.tensor([0, 1])) * h).sum(1))
    with pytest.raises(ConfigError, match="labels"):
        G(z)


def test_orthogonal_regularisation(tmp_path):
    G = tiny().generator
    conv = G.blocks[0].conv1.parametrizations.weight.original  # (out, in, 3, 3): out < in * 9
    weights = ortho_weights(G)
    assert any(w is conv for w in weights)
    assert all(w is not G.shared.weight for w in weights) and all(w.dim() >= 2 for w in weights)
    with torch.no_grad():
        nn.init.orthogonal_(conv)
        assert orthogonality([conv]) < 1e-8
        conv[0] += conv[1]  # two rows no longer orthogonal
        assert orthogonality([conv]) > 0.1
    assert orthogonality([G.shared.weight]) > 0  # would count if it were not excluded
    train(compose_cfg(*FAST, *TINY, "model.game.ortho_weight=1e-2"), tmp_path)
    logged = [row["penalty/ortho"] for row in rows(tmp_path) if "penalty/ortho" in row]
    assert logged and all(v > 0 for v in logged)


def test_model_file_defaults():
    cfg = compose_cfg("model=biggan")
    assert cfg.loss._target_.endswith("Hinge")
    assert cfg.trainer.n_critic == 2 and cfg.trainer.ema.enabled
    assert cfg.optimizer.generator.lr == 5e-5 and cfg.optimizer.discriminator.lr == 2e-4
    assert list(cfg.optimizer.generator.betas) == list(cfg.optimizer.discriminator.betas) == [0.0, 0.999]
    assert cfg.model.game.name == "biggan" and cfg.model.game.ortho_weight == 0.0
    overridden = compose_cfg("model=biggan", "loss=bce", "trainer.n_critic=1")
    assert overridden.loss._target_.endswith("Minimax") and overridden.trainer.n_critic == 1


def test_resume_is_exact(tmp_path):
    run = [*FAST, *TINY, "model.game.ortho_weight=1e-3", "trainer.ckpt_every=100", "trainer.sample_every=100"]
    full, res = full_and_resumed(run, 6, tmp_path)
    for part in ("networks", "ema", "optimizers", "rng", "fixed", "game_state"):
        assert differences(full[part], res[part]) == [], part


def test_bad_input(tmp_path):
    for i in range(4):  # a folder of images without class subfolders: no labels
        Image.new("L", (16, 16), 40 * i).save(tmp_path / f"{i}.png")
    with pytest.raises(ConfigError, match="labelled dataset"):
        train(compose_cfg(*FAST, *TINY, "dataset=image_folder", f"dataset.root={tmp_path}",
                          "dataset.resolution=16", "dataset.channels=1"), tmp_path / "run")
    with pytest.raises(ConfigError, match="dataset.resolution"):
        train(compose_cfg(*FAST, *TINY, "dataset.resolution=24"), tmp_path / "run24")
    with pytest.raises(ConfigError, match="dataset.resolution"):
        biggan.build((1, 24, 24), 10)
    with pytest.raises(ConfigError, match="model.latent_dim"):
        tiny(32, latent_dim=3)
    with pytest.raises(ConfigError, match="model.attn_resolution"):
        tiny(32, attn_resolution=32)
    with pytest.raises(ConfigError, match="model.spectral_norm"):
        tiny(spectral_norm="g")
    with pytest.raises(ConfigError, match="model.game.ortho_weight"):
        train(compose_cfg(*FAST, *TINY, "model.game.ortho_weight=-1"), tmp_path / "ortho")
