"""TensorBoard scalar tags and the help text TensorBoard shows for each."""
from __future__ import annotations


def tag_help(probabilities: bool) -> dict[str, str]:
    """Descriptions of the standard tags; D scores are probabilities only for BCE-style losses."""
    unit = ("probability sigmoid(D(.)) that D calls the input real" if probabilities
            else "raw discriminator/critic score (this loss has no probability reading)")
    return {
        "D/real": f"Mean D(x) on real data during the D step: {unit}.",
        "D/fake": f"Mean D(G(z)) on fakes during the D step, before D's update: {unit}.",
        "D/fake_g": f"Mean D(G(z)) on fakes during the G step, after D's update: {unit}.",
        "loss/D": "Discriminator loss (adversarial term, without penalties), mean over D steps.",
        "loss/G": "Generator loss (the adversarial term; translation games: mean over their discriminators).",
        "loss/G_l1": "Pix2Pix: mean |G(a) - b| on the batch, in [-1, 1] units (weighted by model.game.lambda_l1).",
        "loss/G_total": "Translation games: everything G minimises (adversarial + weighted L1 / cycle / identity).",
        "loss/cycle": "CycleGAN: |G_ba(G_ab(a)) - a| + |G_ab(G_ba(b)) - b| (weighted by model.game.lambda_cycle).",
        "loss/identity": "CycleGAN: |G_ab(b) - b| + |G_ba(a) - a| (weighted by identity x lambda_cycle).",
        "grad_norm/D": "L2 norm of all D gradients at the last D step before the log.",
        "grad_norm/G": "L2 norm of all G gradients at the last G step before the log.",
        "lr/D": "Discriminator learning rate.",
        "lr/G": "Generator learning rate.",
        "perf/img_per_s": "Training throughput: generator steps x batch size per second.",
        "perf/step_ms": "Wall time per training iteration (D and G updates), milliseconds.",
        "perf/mem_gb": "Peak memory: allocated GPU memory, or the process's resident memory on the CPU.",
    }
