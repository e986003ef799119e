"""RL sharded over two processes (FSDP2 on gloo, launched by torchrun), on CPU.

The GPU path is the same code with NCCL: one rank per GPU. These runs use the tiny base model and
the real CLI under ``python -m torch.distributed.run``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from entropy_rl.io import read_jsonl
from entropy_rl.tasks import ArithmeticTask
from entropy_rl.train.distributed import World
from entropy_rl.train.loop import _check_world, train

from .conftest import TINY_TASK, rl_config, write_config
from .test_trainer import assert_same_run, settings, without_timings

# the entropy bonus has a gradient even when every reward of the tiny base model is 0
METHOD = "entropy_bonus"
STEPS = {"steps": 4, "checkpoint_every": 2, "eval_every": 0, "prompts_per_step": 4}


def torchrun(config: Path, out: Path, *args: str) -> None:
    """``entropy-rl train`` on two processes; fails the test with the ranks' output if it fails."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "entropy_rl.cli", "train", "--config", str(config), "--method", METHOD,
        "--seed", "0", "--out", str(out), *args,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


@pytest.mark.slow
def test_two_processes_train_resume_identically_and_hand_over_to_one(tiny_base, tmp_path):
    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, **STEPS))
    torchrun(config, tmp_path / "full")
    rows = read_jsonl(tmp_path / "full" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [0, 1, 2, 3]
    assert any(row["grad_norm"] > 0 for row in rows)
    # every row covers both ranks' responses: the mini-batch token count is the global one
    responses = STEPS["prompts_per_step"] * 4  # group_size 4
    for row in rows:
        assert row["n_valid_tokens"] == pytest.approx(row["response_length"] * responses / 2)

    # stopped after the checkpoint at step 2, then resumed on two processes: the same run
    torchrun(config, tmp_path / "part", "--steps", "2")
    torchrun(config, tmp_path / "part", "--steps", "4", "--resume")
    assert without_timings(read_jsonl(tmp_path / "part" / "metrics.jsonl")) == without_timings(rows)
    full = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "model").state_dict()
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "part" / "model").state_dict()
    assert full.keys() == again.keys()
    assert all(torch.equal(full[name], again[name]) for name in full)

    # micro-batches by tokens: ranks agree on their number (sharded layers run the same forward
    # passes on every rank) and the accumulated update is the whole mini-batch's
    parts = write_config(
        tmp_path / "parts.yaml", rl_config(tiny_base, **STEPS, micro_batch_tokens=70)
    )
    torchrun(parts, tmp_path / "parts")
    assert_same_run(rows, read_jsonl(tmp_path / "parts" / "metrics.jsonl"), rel=1e-4, abs=1e-6)

    # the two-process checkpoint is an ordinary one: a single process continues it
    shutil.copytree(tmp_path / "full", tmp_path / "single")
    started = []
    more = train(
        settings(tiny_base, METHOD, **{**STEPS, "steps": 6}),
        tmp_path / "single",
        ArithmeticTask(**TINY_TASK),
        resume=True,
        on_start=started.append,
    )
    assert started == [4]
    assert without_timings(more[:4]) == without_timings(rows)
    assert [row["step"] for row in more] == list(range(6))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompts_per_step": 4}, "train.prompts_per_step (4) must be a multiple of the number of processes (3)"),
        ({"prompts_per_step": 6, "group_size": 2, "mini_batches": 3}, "train.mini_batches (3) must divide each rank's 4 responses"),
        ({"prompts_per_step": 6, "dynamic_sampling": True}, "train.dynamic_sampling is single-process only"),
    ],
)  # fmt: skip
def test_settings_a_sharded_run_cannot_take_fail_before_any_work(tiny_base, overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _check_world(settings(tiny_base, "grpo", **overrides), World(rank=0, size=3))


FULL_WEIGHTS = """
import os, sys, torch
from transformers import AutoModelForCausalLM
from entropy_rl.train.distributed import full_weights, init_world, shard_model
world = init_world("cpu")
whole = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
sharded = shard_model(AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32), world)
local = sum(p.to_local().numel() for p in sharded.parameters())
expected = dict(whole.named_parameters())
got = dict(full_weights(sharded))
assert local < sum(p.numel() for p in whole.parameters()), "the model is not sharded"
assert got.keys() == expected.keys(), sorted(set(got) ^ set(expected))
assert all(torch.equal(got[k], expected[k]) for k in got)
# one write() of under PIPE_BUF bytes is atomic: the two ranks' lines cannot interleave (print
# wrote them piece by piece, and "rankrank  10  okok  2020" once failed this test)
os.write(1, f"rank {world.rank} ok {len(got)}\\n".encode())
"""


@pytest.mark.slow
def test_full_weights_gathers_each_sharded_parameter_whole_once(tiny_base, tmp_path):
    """What the vLLM rollout backend is given after every step: under FSDP each rank holds a
    shard, and full_weights hands over the whole tensors under the model's names (tied once)."""
    script = tmp_path / "full_weights.py"
    script.write_text(FULL_WEIGHTS)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(tiny_base),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count(" ok ") == 2


def _select_on_rank(rank: int, size: int, init: str, model_dir: str, out: str) -> None:
    """One rank of a gloo group: choose the tokens of its half of a fixed mini-batch over the
    whole mini-batch of both ranks, with the trainer's own helper, and save them."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    try:
        chosen = _choose(model_dir, World(rank, size), rows=slice(rank * 4, rank * 4 + 4))
        torch.save(chosen, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _choose(model_dir: str, world: World, rows: slice) -> dict[str, torch.Tensor]:
    """The tokens each selecting loss chooses for ``rows`` of one fixed 8-row mini-batch."""
    from entropy_rl.losses import get_policy_loss, make_loss_config
    from entropy_rl.step import Update, select_over_mini_batch
    from entropy_rl.train.batch import LanguagePolicy, TokenBatch

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (8, 20), generator=g)
    lengths = torch.randint(12, 21, (8,), generator=g)
    attention = (torch.arange(20)[None] < lengths[:, None]).long()
    response = (torch.arange(19)[None] >= 5) & (torch.arange(19)[None] < lengths[:, None] - 1)
    advantages = torch.randn(8, 1, generator=g).expand(8, 19).contiguous()
    mini = TokenBatch(ids, attention, response, advantages)
    old = -torch.rand(8, 19, generator=g) * 3
    chosen = {}
    for name, values in (("clip_cov", {"r": 0.05, "omega_low": -100.0, "omega_high": 100.0}),
                         ("kl_cov", {"k": 0.05}), ("forking_tokens", {"top_fraction": 0.1})):  # fmt: skip
        plan = Update(get_policy_loss(name), make_loss_config(name, values), 1, 1)
        index = torch.arange(8)[rows]
        chosen[name] = select_over_mini_batch(
            LanguagePolicy(model, world=world), mini.take(index), [torch.arange(len(index))],
            old[index], plan, torch.Generator().manual_seed(7), world,
        )  # fmt: skip
    return chosen


def test_one_and_two_processes_choose_the_same_tokens(tiny_base, tmp_path):
    """Each of two gloo ranks holds half of a mini-batch; gathered, they choose the very tokens
    one process chooses over the whole of it (Clip-Cov's random pick included)."""
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_select_on_rank, args=(2, init, str(tiny_base), str(tmp_path)), nprocs=2, join=True)
    whole = _choose(str(tiny_base), World(), rows=slice(0, 8))
    halves = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for name, chosen in whole.items():
        assert chosen.any(), name
        assert torch.equal(torch.cat([half[name] for half in halves]), chosen), name
