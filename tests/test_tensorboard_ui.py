"""What a user sees in TensorBoard: a real server on a real run, read through the HTTP API the browser uses.

One tiny training by the console script (a WGAN-GP on ring8 with evaluation: losses, penalties,
doctor, perf and eval scalars, sample images, hyperparameters) and one run written with RunLogger
directly (every documented tag). Each is served once by each of TensorBoard's readers.
"""
import json
from pathlib import Path

import pytest
from tensorboard.plugin_util import markdown_to_safe_html

from gan_cli.doctor import SYMPTOMS
from gan_cli.engine.report import hparams_of
from gan_cli.logging.run_logger import RunLogger
from gan_cli.logging.tags import describe, tag_help
from tests.conftest import FAST, TINY_DCGAN, TINY_MLP_RING, compose_cfg, run_gan
from tests.tb import TensorBoard

ARGS = [*FAST, *TINY_MLP_RING, "loss=wgan_gp", "trainer.eval_every=2", "trainer.eval.num_fake=200",
        "trainer.eval.num_real=200", "trainer.eval.metrics=[modes,fd]"]
CHOICES = {"dataset", "loss", "model", "optimizer", "penalty", "trainer"}  # Hydra's, without experiment=null
METRICS = ["loss/D", "loss/G", "D/real", "D/fake"]  # what the trainer declares
# tags with a name in them, as the games and evaluators fill them in
NAMED = ["D_a/real", "D_b/fake", "loss/D_a", "penalty/r1", "penalty/D_b/gp", "penalty/dragan", "metrics/fid",
         "metrics/fd_digits", "metrics/kid_digits", "metrics/kid_digits_std", "metrics/is", "metrics/is_std"]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("tb_ui")
    out = run_gan("train", *ARGS, f"hydra.run.dir={logdir / 'ring'}")
    assert out.returncode == 0, out.stderr[-2000:]
    logger = RunLogger(logdir / "every_tag", tag_help(True))
    tags = [t for t in tag_help(True) if "*" not in t and "[" not in t] + NAMED
    for step in (1, 2):
        logger.scalars(step, {tag: float(i + step) for i, tag in enumerate(tags)})
    logger.close()
    return logdir


@pytest.fixture(scope="module", params=["true", "false"], ids=["rust_reader", "python_reader"])
def board(request, logdir):
    """One server per reader. Ready when every scalar of both runs is listed (the Rust reader loads lazily)."""
    if request.param == "true" and pytest.importorskip("tensorboard_data_server").server_binary() is None:
        pytest.skip("no Rust data server for this platform")
    expected = {run: set().union(*map(json.loads, (logdir / run / "metrics.jsonl").read_text().splitlines()))
                     - {"step", "time"} for run in ("ring", "every_tag")}

    def loaded(tb):
        tags = tb.get_json("/data/plugin/scalars/tags")
        return all(expected[run] <= set(tags.get(f"{run}/tb", {})) for run in expected)

    with TensorBoard(logdir, request.param) as tb:
        tb.wait_for(loaded)
        yield tb


def test_every_scalar_shows_its_help_text(board, logdir):
    tags = board.get_json("/data/plugin/scalars/tags")
    for run, probabilities in (("ring/tb", False), ("every_tag/tb", True)):  # loss=wgan_gp: raw scores
        help_text = tag_help(probabilities)
        assert tags[run]
        for tag, shown in tags[run].items():
            assert describe(help_text, tag), f"no help text for {tag}"
            assert shown == {"displayName": tag, "description": markdown_to_safe_html(describe(help_text, tag))}, tag
    ring = tags["ring/tb"]  # the trainer's writers, each of them
    assert {"penalty/gp", "diag/gp_grad_norm", "perf/mem_gb", "health/gp_off", "metrics/fd", "metrics/modes",
            "lr/G", "grad_norm/D"} <= set(ring)
    assert "raw" in ring["D/real"]["description"]  # WGAN scores are not probabilities


def test_scalar_values_match_metrics_jsonl(board, logdir):
    rows = [json.loads(line) for line in (logdir / "ring" / "metrics.jsonl").read_text().splitlines()]
    for tag in ("loss/D", "lr/G", "metrics/fd"):
        series = board.get_json("/data/plugin/scalars/scalars", run="ring/tb", tag=tag)
        logged = [(row["step"], row[tag]) for row in rows if tag in row]
        assert [step for _, step, _ in series] == [step for step, _ in logged]
        assert [value for *_, value in series] == pytest.approx([value for _, value in logged], rel=1e-6)


def test_sample_images(board):
    images = board.get_json("/data/plugin/images/tags")["ring/tb"]
    assert {"samples/fixed", "samples/real"} <= set(images)
    frames = board.get_json("/data/plugin/images/images", run="ring/tb", tag="samples/fixed", sample="0")
    assert [f["step"] for f in frames] == [2, 4]
    png = board.get(f"/data/plugin/images/individualImage?{frames[-1]['query']}")
    assert png.startswith(b"\x89PNG")


def test_hparams_table_leads_with_the_group_choices(board):
    # the request of the HParams dashboard
    experiment = board.post_json("/data/plugin/hparams/experiment", {"experimentName": "", "hparamsLimit": 1000})
    infos = experiment["hparamInfos"]
    names = [info["name"] for info in infos]
    lead = [info["name"] for info in infos if info["differs"]]
    assert names[:len(lead)] == lead == sorted(lead) and names[len(lead):] == sorted(names[len(lead):])
    assert CHOICES <= set(lead) and set(names[:5]) <= set(lead)  # the five columns the dashboard shows
    changed = {arg.split("=")[0] for arg in ARGS}  # once the trainer passes Hydra's overrides
    assert set(lead) - CHOICES <= changed
    assert not [n for n in names if "._" in n]  # no _target_, _partial_
    assert {"optimizer.generator.lr", "trainer.batch_size", "loss.gp_weight"} <= set(names)
    assert [(m["name"]["tag"], m["description"]) for m in experiment["metricInfos"]] == [
        (tag, describe(tag_help(False), tag)) for tag in METRICS]

    # the request of the runs table (Time Series), with the metrics
    groups = board.post_json("/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_FAILURE", "STATUS_RUNNING", "STATUS_SUCCESS",
                                                  "STATUS_UNKNOWN"],
        "colParams": [{"hparam": name, "includeInResult": True} for name in names],
        "startIndex": 0, "sliceSize": 1000000, "includeMetrics": True})["sessionGroups"]
    assert [g["name"] for g in groups] == ["ring/tb"]
    hparams = groups[0]["hparams"]
    assert {k: hparams[k] for k in ("model", "loss", "dataset", "penalty")} == {
        "model": "mlp", "loss": "wgan_gp", "dataset": "ring8", "penalty": "none"}
    assert hparams["trainer.batch_size"] == 16 and hparams["trainer.eval.metrics"] == "['modes', 'fd']"
    assert {m["name"]["tag"] for m in groups[0]["metricValues"]} == set(METRICS)


def test_hparams_of_leads_with_choices_then_command_line_keys():
    overrides = [*FAST, *TINY_DCGAN, "++loss.real_label=0.9", "optimizer.generator.lr=1e-4"]
    cfg = compose_cfg(*overrides)
    choices = {"dataset": "digits", "loss": "nonsaturating", "optimizer": "adam", "model": "dcgan",
               "penalty": "none", "trainer": "default"}
    params = hparams_of(cfg, choices, overrides)
    assert params.lead[:6] == ["model", "loss", "optimizer", "dataset", "trainer", "penalty"]
    assert params.lead[6:] == ["trainer.max_steps", "trainer.batch_size", "trainer.log_every", "trainer.sample_every",
                               "trainer.ckpt_every", "trainer.num_samples", "trainer.num_workers", "trainer.device",
                               "model.g_width", "model.d_width", "model.latent_dim", "dataset.resolution",
                               "loss.real_label", "optimizer.generator.lr"]
    assert list(params)[:len(params.lead)] == params.lead
    assert params["optimizer.generator.lr"] == 1e-4 and params["optimizer.generator.betas"] == "[0.5, 0.999]"
    assert not [k for k in params if "._" in k] and None not in params.values()
    assert hparams_of(cfg, choices).lead == params.lead[:6]  # without overrides: the choices


def test_every_doctor_symptom_has_help():
    for probabilities in (True, False):
        help_text = tag_help(probabilities)
        assert all(describe(help_text, f"health/{s}") for s in SYMPTOMS)
        assert describe(help_text, "penalty/D_a/r1") == help_text["penalty/*r1"]
        assert describe(help_text, "metrics/kid_digits_std") == help_text["metrics/kid*_std"]
