"""This suite's losses next to the peers' own code, on random batches: loss, gradient, selected tokens.

    python benchmarks/peer_parity.py                    # every comparison whose peer is installed
    python benchmarks/peer_parity.py --batches 20 --json out.json

It installs nothing. verl's ``core_algos`` (the losses of the authors' code, upstream) runs on CPU
tensors: ``pip install --no-deps verl==0.9.1 tensordict==0.10.0 && pip install omegaconf
codetiming pyvers``; its ``ray`` imports are stubbed here, as the loss functions never call Ray.
TRL's ``GRPOTrainer._compute_loss`` runs on a stand-in trainer that hands it the same
log-probabilities (``pip install --no-deps trl==1.16.0``: TRL beside this suite's transformers).
A peer that is not installed prints ``not installed``.

Each row is one comparison, over ``--batches`` random batches (ragged masks, group-constant
advantages, ratios spread so that PPO's clip and verl's dual-clip both act): the largest absolute
difference of the loss and of its gradient with respect to the log-probabilities, and whether the
tokens a loss selects are the same. A row that differs names the convention behind it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import types
from collections import defaultdict
from pathlib import Path

import torch

from entropy_rl.advantages import compute_advantages, kl_penalized_rewards
from entropy_rl.losses import aggregate, get_policy_loss

EXACT = 1e-12  # float64 throughout: agreement is to rounding


def batch(seed: int, rows: int = 16, width: int = 24, spread: float = 1.0):
    """logp, old_logp, advantages [B, T] (constant along each response), mask, entropy."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(rows, width, generator=g, dtype=torch.float64) * 4
    logp = old + spread * torch.randn(rows, width, generator=g, dtype=torch.float64)
    rewards = (torch.rand(rows // 8, 8, generator=g) < 0.5).double()
    adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    mask = torch.arange(width)[None] < lengths[:, None]
    entropy = torch.rand(rows, width, generator=g, dtype=torch.float64) * 2
    return logp, old, adv.reshape(-1, 1).expand(rows, width).contiguous(), mask, entropy


def reference_logp(seed: int, old):
    """A reference policy's log-probabilities of the batch's tokens, near the old ones."""
    g = torch.Generator().manual_seed(10_000 + seed)
    return old + 0.5 * torch.randn(old.shape, generator=g, dtype=torch.float64)


def grad_of(fn, logp):
    """fn(logp with grad) -> (loss, extra); returns (loss, d loss / d logp, extra)."""
    x = logp.clone().requires_grad_(True)
    loss, extra = fn(x)
    (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return loss.detach(), torch.zeros_like(logp) if grad is None else grad, extra


def ours(name, config, logp, old, adv, mask, **extras):
    return grad_of(lambda x: get_policy_loss(name)(x, old, adv, mask, config, **extras), logp)


# -- verl ----------------------------------------------------------------------------------------


def import_verl():
    """verl's core_algos with a stand-in for Ray (whose names its modules only annotate with)."""

    class _Anything(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {"__init__": lambda self, *a, **k: None})

    for name in ("ray", "ray.util", "ray.actor", "ray.util.placement_group",
                 "ray.util.scheduling_strategies", "ray.experimental", "ray.experimental.state",
                 "ray.experimental.state.api"):  # fmt: skip
        sys.modules.setdefault(name, _Anything(name))
    try:
        import verl
        from verl.trainer.ppo import core_algos
        from verl.workers.config import ActorConfig
    except ImportError:
        return None
    return core_algos, ActorConfig, getattr(verl, "__version__", "?")


class _VerlActor(types.SimpleNamespace):
    """The fields of verl's ``ActorConfig`` its policy losses read (the dataclass itself wants a
    whole trainer's worth of settings): clip ratios, ``clip_ratio_c``, ``policy_loss.*``, and
    ``global_batch_info`` (one process, so agg_loss's defaults)."""

    def get(self, key, default=None):
        return getattr(self, key, default)


def verl_actor(ActorConfig, **policy_loss):
    low = policy_loss.pop("clip_ratio_low", 0.2)
    high = policy_loss.pop("clip_ratio_high", 0.2)
    c = policy_loss.pop("clip_ratio_c", 3.0)
    return _VerlActor(clip_ratio=0.2, clip_ratio_low=low, clip_ratio_high=high, clip_ratio_c=c,
                      global_batch_info={}, policy_loss=_VerlActor(**policy_loss))  # fmt: skip


def verl_actor_config(ActorConfig, **fields):
    """An instance of verl's ``ActorConfig`` itself, for the losses that check its type (GSPO,
    CISPO), holding only :func:`verl_actor`'s fields (set past its frozen ``__setattr__``)."""
    actor = object.__new__(type("ActorConfigFields", (ActorConfig,), {}))
    for key, value in vars(verl_actor(ActorConfig, **fields)).items():
        object.__setattr__(actor, key, value)
    return actor


def verl_rows(verl, batches):
    core, ActorConfig, version = verl
    rows = []

    def compare(label, our_fn, verl_fn, note, selected=None):
        loss_diff = grad_diff = 0.0
        same = True
        for seed in range(batches):
            logp, old, adv, mask, entropy = batch(seed)
            a_loss, a_grad, a_sel = our_fn(logp, old, adv, mask, entropy, seed)
            b_loss, b_grad, b_sel = verl_fn(logp, old, adv, mask, entropy, seed)
            loss_diff = max(loss_diff, float((a_loss - b_loss).abs().max()))
            grad_diff = max(grad_diff, float((a_grad - b_grad).abs().max()))
            if selected:
                same &= bool(torch.equal(a_sel, b_sel))
        rows.append({"comparison": label, "peer": f"verl {version}", "loss |diff|": loss_diff,
                     "grad |diff|": grad_diff, "same tokens": same if selected else None,
                     "note": "" if loss_diff < EXACT and grad_diff < EXACT and same else note})  # fmt: skip

    def vanilla(c):
        def fn(logp, old, adv, mask, entropy, seed):
            config = verl_actor(ActorConfig, clip_ratio_c=c)
            return grad_of(lambda x: (core.compute_policy_loss_vanilla(
                old, x, adv, mask.double(), "token-mean", config)[0], None), logp)  # fmt: skip

        return fn

    for c in (3.0, 10.0):
        compare(
            f"GRPO, dual-clip {c:g}  ~  verl vanilla, clip_ratio_c {c:g}",
            lambda lp, o, a, m, e, s, c=c: ours("grpo", {"clip_ratio_c": c}, lp, o, a, m),
            vanilla(c),
            "verl clamps log-ratios to ±20 before exp",
        )
    compare(
        "GRPO, dual-clip off (the default)  ~  verl vanilla, clip_ratio_c 3 (verl's default)",
        lambda lp, o, a, m, e, s: ours("grpo", {}, lp, o, a, m),
        vanilla(3.0),
        "dual-clip: verl caps a token with A < 0 at -3·A; this suite only when clip_ratio_c is set "
        "(the verl engine passes it explicitly)",
    )

    def clip_cov_ours(logp, old, adv, mask, entropy, seed):
        torch.manual_seed(seed)  # verl picks with the global generator; so does generator=None
        config = {"r": 0.05, "omega_low": 0.5, "omega_high": 5.0, "clip_ratio_low": 0.2,
                  "clip_ratio_high": 0.2}  # fmt: skip
        loss, grad, _ = ours("clip_cov", config, logp, old, adv, mask, generator=None)
        return loss, grad, (grad == 0) & mask

    def clip_cov_verl(logp, old, adv, mask, entropy, seed):
        torch.manual_seed(seed)
        config = verl_actor(ActorConfig, clip_cov_ratio=0.05, clip_cov_lb=0.5, clip_cov_ub=5.0)
        loss, grad, _ = grad_of(lambda x: (core.compute_policy_loss_clip_cov(
            old, x, adv, mask.double(), "token-mean", config)[0], None), logp)  # fmt: skip
        return loss, grad, (grad == 0) & mask

    compare("Clip-Cov (r 0.05, band 0.5-5)  ~  verl clip_cov, same seed", clip_cov_ours,
            clip_cov_verl, "", selected=True)  # fmt: skip

    def kl_cov_ours(logp, old, adv, mask, entropy, seed):
        loss, grad, _ = ours("kl_cov", {"k": 0.05, "beta": 1.0}, logp, old, adv, mask)
        _, plain_grad, _ = ours("kl_cov", {"k": 0.05, "beta": 0.0}, logp, old, adv, mask)
        return loss, grad, (grad != plain_grad) & mask

    def kl_cov_verl(logp, old, adv, mask, entropy, seed):
        config = verl_actor(ActorConfig, kl_cov_ratio=0.05, ppo_kl_coef=1.0)
        plain_config = verl_actor(ActorConfig, kl_cov_ratio=0.05, ppo_kl_coef=0.0)
        run = lambda cfg: grad_of(lambda x: (core.compute_policy_loss_kl_cov(  # noqa: E731
            old, x, adv, mask.double(), "token-mean", cfg)[0], None), logp)  # fmt: skip
        loss, grad, _ = run(config)
        _, plain_grad, _ = run(plain_config)
        return loss, grad, (grad != plain_grad) & mask

    compare("KL-Cov (k 0.05, β 1)  ~  verl kl_cov", kl_cov_ours, kl_cov_verl, "", selected=True)

    # the objectives that change what the clip acts on, at clip ranges wide enough to clip some
    for ours_name, verl_fn, low, high in (
        ("gspo", core.compute_policy_loss_gspo, 0.05, 0.05),
        ("gmpo", core.compute_policy_loss_geo_mean, 0.1, 0.1),
        ("cispo", core.compute_policy_loss_cispo, 0.2, 0.2),
        ("sapo", core.compute_policy_loss_sapo, 0.2, 0.2),
    ):

        def ours_fn(logp, old, adv, mask, entropy, seed, name=ours_name, lo=low, hi=high):
            config = {"clip_ratio_low": lo, "clip_ratio_high": hi}
            mode = "seq-mean-token-mean" if name in ("gspo", "sapo") else "token-mean"
            return ours(name, {**config, "loss_agg_mode": mode}, logp, old, adv, mask)

        def verl_call(logp, old, adv, mask, entropy, seed, fn=verl_fn, lo=low, hi=high):
            config = verl_actor_config(ActorConfig, clip_ratio_low=lo, clip_ratio_high=hi)
            object.__setattr__(config, "tau_pos", 1.0)  # SAPO's gate: verl's defaults, as ours
            object.__setattr__(config, "tau_neg", 1.05)
            sequence = (core.compute_policy_loss_gspo, core.compute_policy_loss_sapo)
            mode = "seq-mean-token-mean" if fn in sequence else "token-mean"
            return grad_of(lambda x: (fn(old, x, adv, mask.double(), mode, config)[0], None), logp)

        note = "verl divides each response's token sum by its length + 1e-8" * (
            ours_name in ("gspo", "sapo")
        )
        shape = "tau 1/1.05" if ours_name == "sapo" else f"clip {low:g}/{high:g}"
        compare(f"{ours_name.upper()} ({shape})  ~  verl {verl_fn.__name__[20:]}",
                ours_fn, verl_call, note)  # fmt: skip

    rows += _verl_kl_rows(core, ActorConfig, compare)
    _verl_advantage_rows(core, compare)
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean",
                 "seq-mean-token-sum-norm"):  # fmt: skip

        def ours_agg(logp, old, adv, mask, entropy, seed, mode=mode):
            return grad_of(lambda x: (aggregate(x * adv, mask, mode, 32.0), None), logp)

        def verl_agg(logp, old, adv, mask, entropy, seed, mode=mode):
            return grad_of(lambda x: (core.agg_loss(
                x * adv, mask.double(), mode, loss_scale_factor=32), None), logp)  # fmt: skip

        note = ("verl divides each response's token sum by its length + 1e-8" if mode ==
                "seq-mean-token-mean" else "")  # fmt: skip
        compare(f"aggregate {mode} (T = 32)  ~  verl agg_loss", ours_agg, verl_agg, note)
    return rows


def _verl_kl_rows(core, ActorConfig, compare):
    """The KL to a reference policy: as a loss term (verl's ``use_kl_loss``: ``kl_loss_coef`` ×
    agg_loss of ``kl_penalty``) and as a reward penalty (``apply_kl_penalty``: the token-level
    rewards less ``beta`` × ``kl_penalty`` on the response tokens, summed per response as its
    outcome advantages sum them). Appends through ``compare``; returns no rows of its own."""
    for ours_name, verl_name in (("k1", "kl"), ("k2", "mse"), ("low_var_kl", "low_var_kl"),
                                 ("k3", "k3")):  # fmt: skip

        def ours_kl(logp, old, adv, mask, entropy, seed, est=ours_name):
            config = {"kl_coef": 0.1, "kl_estimator": est, "clip_ratio_c": 3.0}
            return ours("grpo", config, logp, old, adv, mask, ref_logp=reference_logp(seed, old))

        def verl_kl(logp, old, adv, mask, entropy, seed, est=verl_name):
            config = verl_actor(ActorConfig, clip_ratio_c=3.0)
            ref = reference_logp(seed, old)

            def loss(x):
                pg = core.compute_policy_loss_vanilla(old, x, adv, mask.double(), "token-mean",
                                                      config)[0]  # fmt: skip
                kl = core.agg_loss(core.kl_penalty(x, ref, est), mask.double(), "token-mean")
                return pg + 0.1 * kl, None

            return grad_of(loss, logp)

        note = "verl's k3 is its low_var_kl, clamped at 10; this suite's k3 is not" * (
            ours_name == "k3"
        )
        compare(f"GRPO + 0.1 KL ({ours_name})  ~  verl use_kl_loss, kl_loss_type {verl_name}",
                ours_kl, verl_kl, note)  # fmt: skip

    def ours_penalty(logp, old, adv, mask, entropy, seed):
        rewards = adv[:, 0]  # any per-response scores
        penalised, _ = kl_penalized_rewards(
            rewards, old, reference_logp(seed, old), mask, 0.1, "k1"
        )
        return penalised.sum(), torch.zeros_like(logp), None

    def verl_penalty(logp, old, adv, mask, entropy, seed):
        scores = torch.zeros_like(old)  # the outcome score on each response's last token
        last = mask.sum(-1) - 1
        scores[torch.arange(len(old)), last] = adv[:, 0]
        kld = core.kl_penalty(old, reference_logp(seed, old), "kl") * mask
        return (scores - 0.1 * kld).sum(-1).sum(), torch.zeros_like(logp), None

    compare("rewards less 0.1 KL (k1)  ~  verl use_kl_in_reward, kl_penalty kl", ours_penalty,
            verl_penalty, "")  # fmt: skip
    return []


def _verl_advantage_rows(core, compare):
    """Each outcome advantage estimator verl has, on the batch's per-response rewards (groups of
    8; binary with ties, so flat groups and tied maxima occur) placed on each response's last
    token as verl's reward manager places them; compared token by token ("loss" = advantages)."""
    import numpy as np
    from verl.trainer.config import AlgoConfig

    for ours_name, verl_name, norm in (
        ("grpo", "grpo", True), ("dr_grpo", "grpo", False), ("rloo", "rloo", True),
        ("reinforce_plus_plus", "reinforce_plus_plus", True),
        ("reinforce_plus_plus_baseline", "reinforce_plus_plus_baseline", True),
        ("grpo_passk", "grpo_passk", True),
    ):  # fmt: skip

        def rewards_of(adv, seed):
            g = torch.Generator().manual_seed(20_000 + seed)
            return (torch.rand(adv.shape[0], generator=g) < 0.4).double()

        def ours_adv(logp, old, adv, mask, entropy, seed, name=ours_name):
            rewards = rewards_of(adv, seed).view(-1, 8)
            lengths = mask.sum(-1).view(-1, 8)
            advantages, _ = compute_advantages(name, rewards, lengths=lengths)
            return advantages.flatten()[:, None] * mask, torch.zeros_like(logp), None

        def verl_adv(logp, old, adv, mask, entropy, seed, name=verl_name, norm=norm):
            scores = torch.zeros_like(old)
            scores[torch.arange(len(old)), mask.sum(-1) - 1] = rewards_of(adv, seed)
            index = np.repeat(np.arange(len(old) // 8), 8)
            config = AlgoConfig(gamma=1.0, norm_adv_by_std_in_grpo=norm)
            fn = core.get_adv_estimator_fn(name)
            extra = {"norm_adv_by_std_in_grpo": norm} if name == "grpo" else {}
            advantages, _ = fn(token_level_rewards=scores, response_mask=mask.double(),
                               index=index, config=config, **extra)  # fmt: skip
            return advantages, torch.zeros_like(logp), None

        shown = f"{verl_name}, norm_adv_by_std_in_grpo False" if not norm else verl_name
        compare(f"advantage {ours_name}  ~  verl adv_estimator {shown}", ours_adv, verl_adv, "")


# -- TRL -----------------------------------------------------------------------------------------


def import_trl():
    try:
        import trl
        from trl import GRPOTrainer
    except ImportError:
        return None
    return GRPOTrainer, trl.__version__


def trl_stand_in(GRPOTrainer, loss_type, quantile=1.0, max_completion_length=32, args=None,
                 **fields):  # fmt: skip
    """A stand-in GRPOTrainer with the fields TRL's ``_compute_loss`` reads (``fields`` and
    ``args`` override them: clip ranges, the sequence-level ratio, the KL's beta, SAPO's
    temperatures, the adaptive entropy controller)."""

    class Accelerator:
        num_processes, sync_gradients = 1, True

        def pad_across_processes(self, x, dim=0, pad_index=0):
            return x

        gather = gather_for_metrics = lambda self, x: x
        reduce = lambda self, x, reduction="sum": x  # noqa: E731

    settings = {"delta": None, "steps_per_generation": 1, "use_bias_correction_kl": False,
                **(args or {})}  # fmt: skip
    stand_in = types.SimpleNamespace(
        loss_type=loss_type, epsilon_low=0.2, epsilon_high=0.2, beta=0.0, top_entropy_quantile=quantile,
        importance_sampling_level="token", off_policy_mask_threshold=None, use_vllm=False,
        max_completion_length=max_completion_length, current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False, use_adaptive_entropy=False, aux_loss_enabled=False,
        accelerator=Accelerator(), model=types.SimpleNamespace(training=True),
        args=types.SimpleNamespace(**settings), _metrics=defaultdict(lambda: defaultdict(list)),
    )  # fmt: skip
    vars(stand_in).update(fields)
    stand_in.get_high_entropy_mask = GRPOTrainer.get_high_entropy_mask.__get__(stand_in)
    return stand_in


def trl_loss(GRPOTrainer, stand_in, logp, old, adv, mask, entropy, ref=None):
    """TRL's ``_compute_loss`` on ``stand_in``, whose model returns these log-probabilities."""

    def run(x):
        stand_in._get_per_token_logps_and_entropies = lambda *a, **k: (x, entropy, None)
        rows, width = x.shape
        inputs = {"prompt_ids": torch.zeros(rows, 1, dtype=torch.long),
                  "prompt_mask": torch.ones(rows, 1, dtype=torch.long),
                  "completion_ids": torch.zeros(rows, width, dtype=torch.long),
                  "completion_mask": mask.long(), "advantages": adv[:, 0],
                  "old_per_token_logps": old, "num_items_in_batch": mask.sum()}  # fmt: skip
        if ref is not None:
            inputs["ref_per_token_logps"] = ref
        return GRPOTrainer._compute_loss(stand_in, None, inputs), None

    return grad_of(run, logp)


def trl_rows(trl, batches):
    GRPOTrainer, version = trl
    sapo = {"sapo_temperature_pos": 1.0, "sapo_temperature_neg": 1.05}
    # label, our loss, its config, TRL's loss_type, stand-in fields, TRL args, KL, note
    cases = [
        ("GRPO, seq-mean-token-mean  ~  TRL loss_type grpo", "grpo",
         {"loss_agg_mode": "seq-mean-token-mean"}, "grpo", {}, {}, False, ""),
        ("GRPO, token-mean  ~  TRL loss_type bnpo", "grpo", {}, "bnpo", {}, {}, False, ""),
        ("GRPO, token-mean  ~  TRL loss_type dapo", "grpo", {}, "dapo", {}, {}, False, ""),
        ("Dr. GRPO (T = max_new_tokens 32)  ~  TRL dr_grpo (max_completion_length 32)", "dr_grpo",
         {"loss_scale_factor": 32.0}, "dr_grpo", {}, {}, False, ""),
        ("forking tokens 20%, normalizer all  ~  TRL top_entropy_quantile 0.2", "forking_tokens",
         {"top_fraction": 0.2, "normalizer": "all"}, "bnpo", {"top_entropy_quantile": 0.2}, {},
         False, "TRL keeps every token at or above its 0.8 quantile (ties and interpolation); "
         "this suite exactly ceil(0.2·N)"),
        ("forking tokens 20%, normalizer selected (the authors' code)  ~  TRL top_entropy_quantile 0.2",
         "forking_tokens", {"top_fraction": 0.2}, "bnpo", {"top_entropy_quantile": 0.2}, {}, False,
         "normalizer: the authors' code averages over the selected tokens, TRL over all valid ones "
         "(1/0.2 = 5x larger)"),
        ("GSPO (clip 3e-4/4e-4)  ~  TRL importance_sampling_level sequence, loss_type grpo",
         "gspo", {}, "grpo", {"importance_sampling_level": "sequence", "epsilon_low": 3e-4,
                              "epsilon_high": 4e-4}, {}, False, ""),
        ("CISPO (weight <= 1.28)  ~  TRL loss_type cispo, epsilon_high 1.28", "cispo", {},
         "cispo", {"epsilon_high": 1.28}, {}, False, ""),
        ("SAPO (tau 1/1.05)  ~  TRL loss_type sapo", "sapo", {}, "sapo", {}, sapo, False, ""),
        ("GRPO + 0.1 KL (k3)  ~  TRL beta 0.1, loss_type bnpo", "grpo",
         {"kl_coef": 0.1, "kl_estimator": "k3"}, "bnpo", {"beta": 0.1}, {}, True, ""),
    ]  # fmt: skip
    rows = []
    for label, name, config, loss_type, fields, args, kl, note in cases:
        loss_diff = grad_diff = 0.0
        for seed in range(batches):
            logp, old, adv, mask, entropy = batch(seed, spread=0.3)
            ref = reference_logp(seed, old) if kl else None
            extras = {"ref_logp": ref} if kl else {}
            a_loss, a_grad, _ = ours(name, config, logp, old, adv, mask, entropy=entropy, **extras)
            stand_in = trl_stand_in(GRPOTrainer, loss_type, args=args, **fields)
            b_loss, b_grad, _ = trl_loss(GRPOTrainer, stand_in, logp, old, adv, mask, entropy, ref)
            loss_diff = max(loss_diff, float((a_loss - b_loss).abs().max()))
            grad_diff = max(grad_diff, float((a_grad - b_grad).abs().max()))
        exact = loss_diff < EXACT and grad_diff < EXACT
        rows.append({"comparison": label, "peer": f"TRL {version}", "loss |diff|": loss_diff,
                     "grad |diff|": grad_diff, "same tokens": None,
                     "note": "" if exact else note})  # fmt: skip
    rows.append(_trl_adaptive_entropy_row(GRPOTrainer, version, batches))
    return rows


def _trl_adaptive_entropy_row(GRPOTrainer, version, batches, steps=12):
    """Skywork-OR1's adaptive entropy over ``steps`` steps whose entropies straddle the target:
    this suite's controller (ADAPTIVE_ENTROPY) and loss against TRL's ``use_adaptive_entropy``
    (its coefficient updated inside ``_compute_loss``), step by step, token-mean losses."""
    from entropy_rl.losses import make_loss_config

    config = {"target": 1.0, "coef_init": 0.01, "coef_min": 0.0, "coef_max": 0.05, "delta": 0.01}
    controller = get_policy_loss("adaptive_entropy").controller
    loss_diff = grad_diff = 0.0
    for seed in range(batches):
        logp, old, adv, mask, _ = batch(seed, spread=0.3)
        g = torch.Generator().manual_seed(30_000 + seed)
        levels = 1.0 + 0.5 * torch.randn(steps, generator=g, dtype=torch.float64)
        args = {"entropy_target": 1.0, "entropy_coef_delta": 0.01, "entropy_coef_min": 0.0,
                "entropy_coef_max": 0.05}  # fmt: skip
        stand_in = trl_stand_in(GRPOTrainer, "bnpo", args=args, use_adaptive_entropy=True,
                                _entropy_bonus_enabled=True, entropy_coef=0.01,
                                _last_world_entropy=float("inf"), _entropy_window_stats=None)  # fmt: skip
        state = controller.init(make_loss_config("adaptive_entropy", config))
        for level in levels.tolist():
            entropy = torch.full_like(logp, level)
            kwargs = controller.loss_kwargs(make_loss_config("adaptive_entropy", config), state)
            a_loss, a_grad, _ = ours("adaptive_entropy", config, logp, old, adv, mask,
                                     entropy=entropy, **kwargs)  # fmt: skip
            b_loss, b_grad, _ = trl_loss(GRPOTrainer, stand_in, logp, old, adv, mask, entropy)
            loss_diff = max(loss_diff, float((a_loss - b_loss).abs().max()))
            grad_diff = max(grad_diff, float((a_grad - b_grad).abs().max()))
            state, _ = controller.update(make_loss_config("adaptive_entropy", config), state,
                                         {"entropy": level})  # fmt: skip
    note = ("the first step only: TRL starts with the bonus off (its last entropy is inf), this "
            "suite with it on (coef_init acts at step 0)")  # fmt: skip
    exact = loss_diff < EXACT and grad_diff < EXACT
    return {"comparison": f"adaptive entropy, {steps} steps (target 1, delta 0.01)  ~  TRL "
            "use_adaptive_entropy", "peer": f"TRL {version}", "loss |diff|": loss_diff,
            "grad |diff|": grad_diff, "same tokens": None, "note": "" if exact else note}  # fmt: skip


def markdown(rows) -> str:
    lines = ["| comparison | peer | loss \\|diff\\| | grad \\|diff\\| | same tokens | convention behind a difference |",
             "| --- | --- | ---: | ---: | --- | --- |"]  # fmt: skip
    for r in rows:
        fmt = lambda v: "" if v is None else f"{v:.1e}"  # noqa: E731
        same = {None: "", True: "yes", False: "no"}[r["same tokens"]]
        lines.append(f"| {r['comparison']} | {r['peer']} | {fmt(r['loss |diff|'])} | "
                     f"{fmt(r['grad |diff|'])} | {same} | {r['note'] or 'agree'} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=10, help="random batches per comparison")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    rows = []
    verl, trl = import_verl(), import_trl()
    for peer, found, build in (("verl", verl, verl_rows), ("TRL", trl, trl_rows)):
        if found is None:
            rows.append({"comparison": "(all)", "peer": f"{peer}: not installed", "loss |diff|": None,
                         "grad |diff|": None, "same tokens": None, "note": "see the docstring"})  # fmt: skip
        else:
            rows += build(found, args.batches)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=lambda v: None if v != v else v))
    return 0 if all(math.isfinite(r["loss |diff|"] or 0.0) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
