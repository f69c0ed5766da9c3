"""TensorBoard scalar tags and the help text TensorBoard shows for each.

Keys are tags, or patterns for tags that carry a name (`*`: any characters, `/` included), e.g.
`metrics/fd_*` for the Frechet distance in whichever feature space. `describe` picks a tag's text.
"""
from __future__ import annotations

from fnmatch import fnmatchcase


def tag_help(probabilities: bool) -> dict[str, str]:
    """Descriptions of the standard tags; D scores are probabilities only for BCE-style losses."""
    unit = ("probability sigmoid(D(.)) that D calls the input real" if probabilities
            else "raw discriminator/critic score (this loss has no probability reading)")
    return {
        "D/real": f"Mean D(x) on real data during the D step: {unit}.",
        "D/fake": f"Mean D(G(z)) on fakes during the D step, before D's update: {unit}.",
        "D/fake_g": f"Mean D(G(z)) on fakes during the G step, after D's update: {unit}.",
        "D_[ab]/real": f"CycleGAN: mean output of this domain's discriminator on real images: {unit}.",
        "D_[ab]/fake": f"CycleGAN: mean output of this domain's discriminator on translated images: {unit}.",
        "loss/D": "Discriminator loss (adversarial term, without penalties), mean over D steps.",
        "loss/D_[ab]": "CycleGAN: this domain's discriminator loss (0.5 x adversarial term, without penalties).",
        "loss/G": "Generator loss (the adversarial term; translation games: mean over their discriminators).",
        "loss/G_l1": "Pix2Pix: mean |G(a) - b| on the batch, in [-1, 1] units (weighted by model.game.lambda_l1).",
        "loss/G_total": "Translation games: everything G minimises (adversarial + weighted L1 / cycle / identity).",
        "loss/cycle": "CycleGAN: |G_ba(G_ab(a)) - a| + |G_ab(G_ba(b)) - b| (weighted by model.game.lambda_cycle).",
        "loss/identity": "CycleGAN: |G_ab(b) - b| + |G_ba(a) - a| (weighted by identity x lambda_cycle).",
        "penalty/mode_seeking": "MSGAN mode-seeking term of G, 1 / (|G(z1) - G(z2)| / |z1 - z2|), before its weight "
                                "trainer.mode_seeking.",
        "penalty/*gp": "Gradient penalty (WGAN-GP): weight x (||grad D(x_hat)|| - 1)^2 on real/fake interpolates, "
                       "as added to D's loss.",
        "penalty/*r1": "R1 penalty: (weight / 2) x ||grad D(x)||^2 on real data, as added to D's loss.",
        "penalty/*r2": "R2 penalty: (weight / 2) x ||grad D(G(z))||^2 on fakes, as added to D's loss.",
        "penalty/*dragan": "DRAGAN penalty: weight x (||grad D(x_p)|| - 1)^2 at perturbed real points, "
                           "as added to D's loss.",
        "penalty/path_length": "StyleGAN2 path-length regulariser: weight x every x (|J_w^T y| - running mean)^2, "
                               "as added to G's loss on its lazy steps (model.game.pl_every).",
        "penalty/ortho": "BigGAN orthogonal regularisation: weight x sum of ||W W^T * (1 - I)||_F^2 over G's "
                         "weights (not the shared class embedding), as added to G's loss.",
        "penalty/lecam": "LeCam: |relu(D(x) - EMA of D(G(z)))|^2 + |relu(EMA of D(x) - D(G(z)))|^2, before its "
                         "weight trainer.lecam.weight.",
        "penalty/bcr_*": "bCR: mean |D(x) - D(T(x))|^2 on reals (bcr_real) or fakes (bcr_fake), T a random flip and "
                         "shift, before its weight trainer.bcr.real / fake.",
        "penalty/zcr_d": "zCR, D's term: mean |D(G(z)) - D(G(z + e))|^2, before its weight trainer.zcr.d.",
        "penalty/zcr_g": "zCR, G's term: mean |G(z) - G(z + e)|^2, which G's loss raises (weight trainer.zcr.g).",
        "penalty/*": "Penalty on D (the `penalty` group or the loss's own), weighted, as added to D's loss.",
        "ada/p": "ADA: the probability with which each augmentation is applied to every image D sees (mean over the "
                 "log window); it rises while ada/rt is above trainer.ada.target and falls while below.",
        "ada/rt": "r_t = E[sign(D(x))] on the real batches: 1 when D is sure of every real image, ADA's measure of "
                  "D overfitting (logged with or without ADA; with health/r_v, the doctor's health/memorising).",
        "stylegan/pl_mean": "StyleGAN2: running mean of the path lengths |J_w^T y| the regulariser pulls toward.",
        "progan/resolution": "ProGAN: side of the images G and D train on now (mean over the log window).",
        "progan/alpha": "ProGAN: fade-in weight of the newest resolution, 0 -> 1 while it fades in, 1 when stable.",
        "diag/gp_grad_norm": "WGAN-GP: mean ||grad D(x_hat)|| on the interpolates; the penalty holds it near 1.",
        "grad_norm/D": "L2 norm of all D gradients at the last D step before the log.",
        "grad_norm/G": "L2 norm of all G gradients at the last G step before the log.",
        "amp/scale/*": "fp16: the grad scaler's loss scale for this network. It halves at a step whose gradients "
                       "overflowed (that step is skipped, and grad_norm/* is not logged for it), and grows again.",
        "lr/D": "Discriminator learning rate.",
        "lr/G": "Generator learning rate.",
        "perf/img_per_s": "Training throughput: generator steps x batch size per second.",
        "perf/step_ms": "Wall time per training iteration (D and G updates), milliseconds.",
        "perf/data_ms": "Of perf/step_ms, the wall time an iteration waited for its batches (reading, decoding, "
                        "copying to the device), milliseconds. Over 20% of the step for data read from disk, the "
                        "doctor reports data as the bottleneck (health/data_bound).",
        "perf/mem_gb": "Peak memory: allocated GPU memory, or the process's resident memory on the CPU.",
        **HEALTH,
        **METRICS,
    }


def describe(help_text: dict[str, str], tag: str) -> str:
    """The help text of `tag`: its own entry, else that of the first pattern it matches, else ""."""
    if tag in help_text:
        return help_text[tag]
    return next((text for pattern, text in help_text.items() if fnmatchcase(tag, pattern)), "")


_EPISODE = "Training doctor: 1 while this failure mode is seen, else 0. "
HEALTH = {  # gan_cli/doctor.py SYMPTOMS
    "health/non_finite": _EPISODE + "A logged stat became NaN/Inf.",
    "health/d_overpowers_g": _EPISODE + "D rejects fakes confidently (D/real high, D/fake low): G gets no signal.",
    "health/vanishing_gradients": _EPISODE + "grad_norm/G has collapsed: G no longer learns.",
    "health/g_wins": _EPISODE + "D/fake reaches D/real: D no longer tells real from fake.",
    "health/mode_collapse": _EPISODE + "Samples lack diversity (diversity ratio, class KL or mode coverage).",
    "health/oscillation": _EPISODE + "loss/G and loss/D swing periodically without a trend.",
    "health/critic_flat": _EPISODE + "WGAN: the critic's loss/D stays flat (weight clipping too tight?).",
    "health/gp_off": _EPISODE + "WGAN-GP: the gradient norm on interpolates (diag/gp_grad_norm) is far from 1.",
    "health/memorising": _EPISODE + "D memorises the training set with ADA off: it is sure of its training images "
                                    "(ada/rt above trainer.doctor.memorising_rt) and scores images it never trained "
                                    "on like fakes (health/r_v above trainer.doctor.memorising_rv).",
    "health/data_bound": _EPISODE + "Data read from disk is the bottleneck: perf/data_ms is over 20% of perf/step_ms.",
    "health/r_v": "Training doctor: ADA's r_v, (E D(train) - E D(held-out)) / (E D(train) - E D(G(z))) on D's raw "
                  "outputs for fixed reals the run trains on and as many it does not (the rest of the data when "
                  "dataset.subset keeps a part): about 0 while D scores unseen reals like its training reals, 1 when "
                  "like fakes (memorising).",
    "health/diversity_ratio": "Training doctor: mean pairwise distance of fresh fakes / of a real batch "
                              "(about 1 when as diverse as the data, near 0 for mode collapse).",
}

METRICS = {  # gan_cli/metrics: evaluation during training (trainer.eval_every), named as `gan eval` names them
    "metrics/fid": "FID: Frechet distance of Inception features, generated vs real (lower is better).",
    "metrics/fd": "Frechet distance between generated and real data in raw coordinates (lower is better).",
    "metrics/fd_*": "Frechet distance between generated and real features of the named extractor (digits: the "
                    "digits classifier, inception: FID's Inception, raw: the pixels; lower is better).",
    "metrics/kid*_std": "Standard deviation of KID over its random subsets.",
    "metrics/kid*": "KID: kernel (MMD^2) distance between generated and real features (lower is better).",
    "metrics/is*_std": "Standard deviation of the Inception Score over its splits.",
    "metrics/is*": "Inception Score: exp E KL(p(y|x) || p(y)) from the classifier's logits (higher is better).",
    "metrics/precision": "Precision (Kynkaanniemi et al. 2019): fraction of fakes inside the real data's "
                         "k-NN manifold (quality; higher is better).",
    "metrics/recall": "Recall (Kynkaanniemi et al. 2019): fraction of reals inside the fakes' k-NN manifold "
                      "(diversity; higher is better).",
    "metrics/density": "Density (Naeem et al. 2020): how many real k-NN balls hold each fake, about 1 for "
                       "matching distributions.",
    "metrics/coverage": "Coverage (Naeem et al. 2020): fraction of real k-NN balls holding at least one fake.",
    "metrics/class_coverage": "Fraction of classes the classifier predicts for at least a tenth of their "
                              "uniform share of fakes (higher is better).",
    "metrics/class_kl": "KL(predicted class histogram of the fakes || uniform): 0 when balanced (lower is better).",
    "metrics/nn_fake_train_median": "Median distance of a fake to its nearest training example.",
    "metrics/nn_heldout_train_median": "Median distance of a held-out real example to its nearest training example.",
    "metrics/nn_ratio": "Memorisation: nn_fake_train_median / nn_heldout_train_median, well below 1 for copies.",
    "metrics/copy_fraction": "Memorisation: fraction of fakes closer to the training set than 99% of held-out "
                             "data is (about 0.01 when novel, lower is better).",
    "metrics/modes": "2D mixtures: modes covered by at least one high-quality sample (of metrics/num_modes).",
    "metrics/num_modes": "2D mixtures: number of modes of the mixture.",
    "metrics/hq_fraction": "2D mixtures: fraction of samples within 3 standard deviations of a mode centre.",
    "metrics/kl_uniform": "2D mixtures: KL(mode histogram of the high-quality samples || uniform) "
                          "(lower is better).",
    "metrics/l1": "Translation: mean |G(a) - b| against the paired targets, in [-1, 1] units (lower is better).",
    "metrics/psnr": "Translation: PSNR of the outputs against the paired targets, dB (higher is better).",
    "metrics/ssim": "Translation: SSIM of the outputs against the paired targets (higher is better).",
    "metrics/class_accuracy": "Translation: accuracy of the target domain's classifier on the outputs "
                              "(higher is better).",
    "metrics/cycle_l1": "CycleGAN: mean |G_ba(G_ab(a)) - a| on held-out inputs (lower is better).",
    "metrics/cycle_l1_b": "CycleGAN: mean |G_ab(G_ba(b)) - b| on held-out B images (lower is better).",
}
