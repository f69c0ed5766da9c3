"""The training doctor: watches the per-log-step stats and reports known GAN failure modes.

`Doctor.observe(step, stats, extra)` is called once per log step with the trainer's window means
(D/real, D/fake, loss/D, loss/G, grad_norm/G, ...) and optional extra measurements
(diversity_ratio, class_kl, gp_grad_norm, data_wait, r_v). Each rule turns an observation into "symptom
present", "absent" or "unknown" (its inputs are missing); a symptom present for `window`
consecutive observations (unknown ones neither count nor break the run) starts an EPISODE,
reported once as a `Finding` with the fix to try. The episode lasts until an observation
shows the symptom absent; a later return is a new episode and a new finding.

Rules and sources:
  non_finite          any stat is NaN/Inf; reported at once.
  d_overpowers_g      (probabilities only) D(x) > d_wins_real and D(G(z)) < d_wins_fake:
                      D rejects fakes confidently, G gets no signal
                      (Goodfellow et al. 2014, sec. 3; Arjovsky & Bottou 2017).
  vanishing_gradients grad_norm/G < g_grad_vanish while D wins (probabilities), or, for any
                      loss, grad_norm/G below g_grad_collapse x its running max
                      (Arjovsky & Bottou 2017, theorem 2.4; Goodfellow et al. 2014).
  g_wins              D/fake >= D/real - g_wins_margin: D no longer separates real from fake
                      (D collapse); compares raw scores directly, so it works for every loss.
                      Note: BCE training at its exact equilibrium sits at D/real = D/fake = 0.5.
  mode_collapse       extra diversity_ratio < diversity_ratio, or extra class_kl > class_kl, or
                      extra mode_coverage (2D mixtures: modes covered / modes) < mode_coverage
                      (Salimans et al. 2016, minibatch discrimination; Metz et al. 2017).
  oscillation         over the last oscillation_window observations, BOTH loss/G and loss/D
                      (each): (a) no trend: a least-squares line explains under half the variance,
                      i.e. |slope| * n < sqrt(6) * std; (b) swing: std of the detrended series
                      > oscillation_min_swing * its mean absolute level; (c) periodic, not noise:
                      the detrended series crosses zero >= 3 times (a converging, convex curve
                      crosses its line only twice) and >= 70% of its power lies in one frequency
                      (the strongest periodogram bin with >= 2 cycles per window, +-1 bin); white
                      noise spreads its power (~2% of pure-noise windows pass). With the default
                      20 observations this catches periods of 2 to ~10 log steps. Judged on each
                      observation once the window is full; an episode starts the first time it
                      holds (Mescheder et al. 2018).
  critic_flat         (wasserstein only) loss/D range over the last `window` observations
                      < critic_flat_tol, judged only after the first `window` observations of
                      the run (Arjovsky et al. 2017: the critic should track the distance).
  gp_off              |extra gp_grad_norm - 1| > gp_norm_tol: the gradient penalty does not hold
                      the critic's gradient norm near 1 on interpolates (Gulrajani et al. 2017).
  memorising          (not wasserstein, ADA off: no ada/p) ada/rt = E[sign(D(x))] on the training reals >
                      memorising_rt (r_t, the overfitting heuristic ADA steers by) and extra r_v > memorising_rv:
                      reals the run does not train on score r_v of the way from the training reals to the
                      fakes (Karras et al. 2020, sec. 3 and fig. 3). r_t alone cannot tell a D that memorises
                      from one merely ahead of G (a healthy DCGAN on all the digits keeps r_t near 1, as on
                      100 of them), so the rule needs held-out reals: unknown without them.
  data_bound          extra data_wait (perf/data_ms / perf/step_ms; given for data read from disk, where
                      the fixes apply, not for data kept in memory) > DATA_WAIT: steps wait for their
                      batches. A wall-clock rule: unlike the others it can differ between two runs.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor

from gan_cli.config import DoctorConfig  # defined with the schema, which must load without torch

SYMPTOMS = ("non_finite", "d_overpowers_g", "vanishing_gradients", "g_wins", "mode_collapse",
            "oscillation", "critic_flat", "gp_off", "memorising", "data_bound")
DATA_WAIT = 0.2  # data_bound: the largest share of a step that may go to waiting for its batch


@dataclass
class Finding:
    step: int
    symptom: str    # one of SYMPTOMS
    message: str    # what is seen, with the numbers
    fix: str        # what to try, as config overrides


FIXES = {
    "non_finite": "lower the learning rates (optimizer.generator.lr / optimizer.discriminator.lr), "
                  "use a gradient penalty (experiment=wgan_gp), or trainer.nan_policy=rollback",
    "d_overpowers_g": "loss=nonsaturating; one-sided label smoothing loss.real_label=0.9; optimizer=ttur; "
                      "experiment=wgan_gp; instance noise trainer.instance_noise=0.1",
    "vanishing_gradients": "if loss=bce (saturating minimax): loss=nonsaturating; otherwise experiment=wgan_gp "
                           "(loss=wgan_gp optimizer=adam_wgan trainer.n_critic=5); loss.real_label=0.9",
    "g_wins": "strengthen D: trainer.n_critic=2 (or more), a lower G lr (optimizer.generator.lr) or optimizer=ttur, "
              "a wider D (model.d_width / model.hidden_dim); check D is not over-regularised (loss.flip_prob, dropout)",
    "mode_collapse": "model.minibatch=stddev (or =discrimination), model.pack=2, loss=wgan_gp, "
                     "a larger latent (model.latent_dim)",
    "oscillation": "lower Adam beta1: optimizer.generator.betas=[0.0,0.9] optimizer.discriminator.betas=[0.0,0.9] "
                   "(or keep [0.5,0.999] with lower lr); trainer.ema.enabled=true; trainer.lr_decay=linear",
    "critic_flat": "weight clipping too tight (loss.clip, default 0.01): raise it or use loss=wgan_gp "
                   "(experiment=wgan_gp); more critic steps trainer.n_critic=5",
    "gp_off": "loss.gp_weight=10, trainer.n_critic=5, optimizer=adam_wgan (betas [0.0,0.9])",
    "memorising": "adaptive augmentation, trainer.ada.enabled=true (p rises until r_t settles at trainer.ada.target); "
                  "or DiffAugment, trainer.augment=[color,translation,cutout]; trainer.lecam.weight=0.3; more data",
    "data_bound": "decode the images once: `gan prepare source=FOLDER out=PREPARED resolution=N`, then train with "
                  "dataset=prepared dataset.path=PREPARED (kept in memory when it fits trainer.data_in_memory_gb); "
                  "or more DataLoader workers, trainer.num_workers=8 (up to the CPU cores)",
}


def _stat(d: dict[str, float] | None, key: str) -> float | None:
    """A finite value or None (missing or non-finite: the rule's state is unknown)."""
    if d is None or key not in d:
        return None
    v = float(d[key])
    return v if math.isfinite(v) else None


def _periodic_swing(xs: list[float], min_swing: float) -> tuple[bool, float]:
    """Whether a series swings periodically with no trend (see module doc); returns (yes, swing)."""
    n = len(xs)
    x = torch.tensor(xs, dtype=torch.float64)
    t = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    mean, std = x.mean(), x.std(unbiased=False)
    if std == 0:
        return False, 0.0
    slope = (t * (x - mean)).sum() / (t * t).sum()
    resid = x - mean - slope * t
    swing = (resid.std(unbiased=False) / x.abs().mean().clamp_min(1e-12)).item()
    no_trend = abs(slope.item()) * n < math.sqrt(6.0) * std.item()
    signs = torch.sign(resid[resid != 0])
    crossings = int((signs[1:] != signs[:-1]).sum())
    power = torch.fft.rfft(resid).abs()[1:] ** 2          # bins k = 1 .. n/2 cycles per window
    if len(power) < 2 or power.sum() == 0:
        return False, swing
    k = int(power[1:].argmax()) + 1                        # strongest bin with >= 2 cycles
    peak = (power[max(k - 1, 1):k + 2].sum() / power.sum()).item()
    return no_trend and swing > min_swing and crossings >= 3 and peak >= 0.7, swing


def _fmt(v: float) -> str:
    return f"{v:.3g}"


class Doctor:
    """Per-log-step watcher; see the module doc for the rules."""

    def __init__(self, config: DoctorConfig, probabilities: bool, wasserstein: bool):
        if config.window < 1 or config.oscillation_window < 4:
            raise ValueError("doctor: window must be >= 1 and oscillation_window >= 4")
        self.cfg, self.probabilities, self.wasserstein = config, probabilities, wasserstein
        self._streak = {s: 0 for s in SYMPTOMS}
        self._active = {s: False for s in SYMPTOMS}
        self._findings: list[Finding] = []
        self._seen = 0
        self._g_grad_max = 0.0
        self._loss_g: deque[float] = deque(maxlen=config.oscillation_window)
        self._loss_d: deque[float] = deque(maxlen=config.oscillation_window)
        self._critic: deque[float] = deque(maxlen=config.window)

    # ------------------------------------------------------------------ rules
    def _rules(self, stats: dict[str, float], extra: dict[str, float] | None) -> dict[str, tuple[bool | None, str, int]]:
        """symptom -> (present / absent / None = unknown, message, observations needed)."""
        c, out = self.cfg, {}
        every = {**stats, **(extra or {})}
        bad = sorted(k for k, v in every.items() if not math.isfinite(float(v)))
        out["non_finite"] = (bool(bad), f"non-finite values: {', '.join(f'{k}={every[k]}' for k in bad)}", 1)

        real, fake, g_grad = _stat(stats, "D/real"), _stat(stats, "D/fake"), _stat(stats, "grad_norm/G")
        d_wins = None
        if self.probabilities and real is not None and fake is not None:
            d_wins = real > c.d_wins_real and fake < c.d_wins_fake
            out["d_overpowers_g"] = (d_wins, f"D wins: D(x)={_fmt(real)} > {c.d_wins_real} and D(G(z))={_fmt(fake)} "
                                             f"< {c.d_wins_fake} for {c.window} log steps", c.window)
        if g_grad is not None:
            self._g_grad_max = max(self._g_grad_max, g_grad)
            small = bool(d_wins) and g_grad < c.g_grad_vanish
            collapsed = g_grad < c.g_grad_collapse * self._g_grad_max
            why = (f"below {c.g_grad_vanish} while D wins" if small else
                   f"below {c.g_grad_collapse:g} x its running max {_fmt(self._g_grad_max)}")
            out["vanishing_gradients"] = (small or collapsed, f"G's gradient norm {_fmt(g_grad)} is {why} "
                                                              f"for {c.window} log steps", c.window)
        if real is not None and fake is not None:
            out["g_wins"] = (fake >= real - c.g_wins_margin,
                             f"D no longer separates: D(G(z))={_fmt(fake)} >= D(x)={_fmt(real)}"
                             f"{f' - {c.g_wins_margin}' if c.g_wins_margin else ''} for {c.window} log steps", c.window)

        div, kl = _stat(extra, "diversity_ratio"), _stat(extra, "class_kl")
        cover = _stat(extra, "mode_coverage")
        if div is not None or kl is not None or cover is not None:
            low_div, high_kl = div is not None and div < c.diversity_ratio, kl is not None and kl > c.class_kl
            few_modes = cover is not None and cover < c.mode_coverage
            seen = [f"fake/real diversity ratio {_fmt(div)} < {c.diversity_ratio}"] if low_div else []
            seen += [f"class-histogram KL to uniform {_fmt(kl)} > {c.class_kl}"] if high_kl else []
            seen += [f"only {_fmt(cover * 100)}% of the data's modes covered"] if few_modes else []
            out["mode_collapse"] = (low_div or high_kl or few_modes,
                                    f"mode collapse: {' and '.join(seen)} for {c.window} log steps", c.window)

        lg, ld = _stat(stats, "loss/G"), _stat(stats, "loss/D")
        if lg is not None and ld is not None:
            self._loss_g.append(lg)
            self._loss_d.append(ld)
            if len(self._loss_g) == c.oscillation_window:
                osc_g, sw_g = _periodic_swing(list(self._loss_g), c.oscillation_min_swing)
                osc_d, sw_d = _periodic_swing(list(self._loss_d), c.oscillation_min_swing)
                out["oscillation"] = (osc_g and osc_d, f"losses oscillate with no trend over {c.oscillation_window} log "
                                      f"steps: swing (detrended std / mean level) loss/G {_fmt(sw_g)}, loss/D "
                                      f"{_fmt(sw_d)} > {c.oscillation_min_swing}", 1)

        if self.wasserstein and ld is not None:
            self._critic.append(ld)
            if self._seen > c.window and len(self._critic) == c.window:
                spread = max(self._critic) - min(self._critic)
                out["critic_flat"] = (spread < c.critic_flat_tol, f"critic loss flat: loss/D range {_fmt(spread)} < "
                                      f"{c.critic_flat_tol} over the last {c.window} log steps (now {_fmt(ld)})", 1)

        gp = _stat(extra, "gp_grad_norm")
        if gp is not None:
            out["gp_off"] = (abs(gp - 1) > c.gp_norm_tol, f"gradient penalty not holding: critic grad norm on "
                             f"interpolates {_fmt(gp)}, |x - 1| > {c.gp_norm_tol} for {c.window} log steps", c.window)

        rt, rv = _stat(stats, "ada/rt"), _stat(extra, "r_v")
        if rt is not None and rv is not None and not self.wasserstein and "ada/p" not in stats:
            out["memorising"] = (rt > c.memorising_rt and rv > c.memorising_rv,
                                 f"D is memorising the training set: it is sure of its training images (r_t = "
                                 f"E[sign(D(x))] = {_fmt(rt)} > {c.memorising_rt}) and scores images it never trained "
                                 f"on r_v = {_fmt(rv)} of the way from them to the fakes (> {c.memorising_rv}), for "
                                 f"{c.window} log steps", c.window)

        wait = _stat(extra, "data_wait")
        if wait is not None:
            data_ms, step_ms = stats.get("perf/data_ms", 0.0), stats.get("perf/step_ms", 0.0)
            out["data_bound"] = (wait > DATA_WAIT, f"data is the bottleneck: a step waits {_fmt(data_ms)} ms of its "
                                 f"{_fmt(step_ms)} ms ({wait:.0%}, over {DATA_WAIT:.0%}) for its batches, for "
                                 f"{c.window} log steps", c.window)
        return out

    # ------------------------------------------------------------------ API
    def observe(self, step: int, stats: dict[str, float], extra: dict[str, float] | None = None) -> list[Finding]:
        """New findings (episode starts) at this log step."""
        if not self.cfg.enabled:
            return []
        self._seen += 1
        new = []
        for symptom, (present, message, needed) in self._rules(stats, extra).items():
            if present is None or (step < self.cfg.warmup_steps and symptom != "non_finite"):
                continue
            if not present:
                self._streak[symptom], self._active[symptom] = 0, False
                continue
            self._streak[symptom] += 1
            if not self._active[symptom] and self._streak[symptom] >= needed:
                self._active[symptom] = True
                new.append(Finding(step, symptom, message, FIXES[symptom]))
        self._findings += new
        return new

    def health(self) -> dict[str, float]:
        """health/<symptom>: 1.0 while its episode is active, else 0.0 (every symptom, always)."""
        if not self.cfg.enabled:
            return {}
        return {f"health/{s}": float(self._active[s]) for s in SYMPTOMS}

    def summary(self) -> list[Finding]:
        """Every finding so far, in order."""
        return list(self._findings)

    def state_dict(self) -> dict:
        """What a resumed run needs to judge its next log steps as the uninterrupted run would (plain types)."""
        return {"streak": dict(self._streak), "active": dict(self._active), "seen": self._seen,
                "g_grad_max": self._g_grad_max, "loss_g": list(self._loss_g), "loss_d": list(self._loss_d),
                "critic": list(self._critic), "findings": [vars(f) for f in self._findings]}

    def load_state_dict(self, state: dict | None) -> None:
        if not state:  # a checkpoint from before the doctor was saved: start watching afresh
            return
        self._streak.update(state["streak"])
        self._active.update(state["active"])
        self._seen, self._g_grad_max = state["seen"], state["g_grad_max"]
        for queue, key in ((self._loss_g, "loss_g"), (self._loss_d, "loss_d"), (self._critic, "critic")):
            queue.clear()
            queue.extend(state[key])
        self._findings = [Finding(**f) for f in state["findings"]]


@torch.no_grad()
def diversity_ratio(fake: Tensor, real: Tensor) -> float:
    """Mean pairwise L2 distance within `fake` / within `real` (samples flattened, diagonal excluded).

    ~1 when fakes are as varied as real data, 0 for a batch of identical fakes. If the real batch
    has zero spread: 1.0 when the fakes have none either, else inf.
    """
    def spread(x: Tensor) -> float:
        if x.shape[0] < 2:
            raise ValueError(f"diversity_ratio needs at least 2 samples per batch, got {x.shape[0]}")
        x = x.detach().reshape(x.shape[0], -1).double()
        d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
        n = x.shape[0]
        return (d.sum() / (n * (n - 1))).item()   # the diagonal is exactly 0

    f, r = spread(fake), spread(real)
    if r == 0:
        return 1.0 if f == 0 else math.inf
    return f / r
