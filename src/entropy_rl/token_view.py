"""Seeing the forks: each sampled token shaded by its entropy under the policy that sampled it.

The paper's story lives at a few *forking* tokens, where the policy still hesitates between
continuations; RL without care makes them certain (Cui et al., 2025, §2-3; Wang et al., 2025,
"Beyond the 80/20 Rule"). For each policy (the base model, then each RL method) this samples
responses to the same held-out prompts and, for every response token ``t``, records

    H_t = -sum_v pi(v | prefix) log pi(v | prefix),   pi = softmax(z / T)

the entropy of the tempered policy that sampled it (as the trainer defines it), and the token's
probability. The **forks** are the base model's highest-entropy tokens that together carry 80% of
its total token entropy (at a low rollout temperature nearly every other token is certain, so a
share of the tokens, the 80/20 paper's top 20%, would mark certain ones too); the entropy of the
last of them is the bar, the same for every policy, so after collapse the forks disappear. Beside
the tokens, the mean entropy at each response position over every sampled response of each policy.

``render_token_view`` writes one self-contained HTML page (no script, no network).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from entropy_rl.data import render_prompt
from entropy_rl.rewards import grade
from entropy_rl.rollout import HFGenerator
from entropy_rl.train.batch import collate, policy_forward

__all__ = [
    "FORK_MASS",
    "TokenTrace",
    "fork_threshold",
    "position_means",
    "render_token_view",
    "token_view_body",
    "token_view_fragment",
    "trace_policies",
    "trace_policy",
]

FORK_MASS = 0.8  # the forks carry 80% of the base model's token entropy


@dataclass(frozen=True)
class TokenTrace:
    """One sampled response: its tokens (as text), their entropies (nats) and probabilities."""

    problem_id: str
    tokens: list[str]
    entropy: list[float]
    prob: list[float]
    correct: bool


def trace_policy(
    model,
    tokenizer,
    problems: Sequence,
    template: str,
    temperature: float,
    max_new_tokens: int,
    seed: int = 0,
) -> list[TokenTrace]:
    """One response per problem sampled at ``temperature``, with each token's entropy and
    probability under ``softmax(z / temperature)`` (the policy's own distribution)."""
    generator = HFGenerator(model, tokenizer)
    prompts = [render_prompt(template, p.problem) for p in problems]
    generation = generator.generate(prompts, 1, temperature, 1.0, max_new_tokens, seed)
    batch = collate(generation, torch.zeros(len(prompts)), tokenizer.pad_token_id or 0)
    batch = batch.to(next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        logp, entropy = policy_forward(model, batch, temperature=temperature)
    traces = []
    for row, problem in enumerate(problems):
        positions = batch.response_mask[row].nonzero().flatten()
        ids = generation.response_ids[row]
        traces.append(
            TokenTrace(
                problem_id=str(problem.id),
                tokens=[tokenizer.decode([i]) for i in ids],
                entropy=[float(v) for v in entropy[row, positions]],
                prob=[float(v) for v in logp[row, positions].exp()],
                correct=grade(generation.texts[row], problem.answer),
            )
        )
    return traces


def trace_policies(
    model_dirs: Mapping[str, str], problems: Sequence, template: str, temperature: float,
    max_new_tokens: int, seed: int = 0,
) -> dict[str, list[TokenTrace]]:  # fmt: skip
    """``trace_policy`` for each saved model (``name -> folder``), on the same problems (on a GPU
    when there is one)."""
    from entropy_rl.rollout import load_model, load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    traces = {}
    for name, folder in model_dirs.items():
        model = load_model(folder).to(device)
        tokenizer = load_tokenizer(folder)
        traces[name] = trace_policy(
            model, tokenizer, problems, template, temperature, max_new_tokens, seed
        )
    return traces


def fork_threshold(traces: Sequence[TokenTrace], mass: float = FORK_MASS) -> float:
    """The fork bar of ``traces`` (the base model's): the entropy ``h*`` of the last of its
    highest-entropy tokens that together carry ``mass`` of its total token entropy, so tokens with
    entropy >= ``h*`` are forks; ``inf`` (no forks) when every token is certain."""
    values = sorted((h for trace in traces for h in trace.entropy), reverse=True)
    total = sum(values)
    carried = 0.0
    for value in values:
        carried += value
        if value > 0 and carried >= mass * total:
            return float(value)
    return float("inf")


def position_means(traces: Sequence[TokenTrace]) -> list[float]:
    """Mean entropy at each response position, over the responses that reach it."""
    longest = max((len(t.entropy) for t in traces), default=0)
    return [
        float(np.mean([t.entropy[i] for t in traces if len(t.entropy) > i])) for i in range(longest)
    ]


# lines per policy (no red: red is the token shading); the base model first, dashed
PALETTE = ["#222222", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]  # fmt: skip


def _shade(entropy: float, scale: float) -> str:
    """Red with opacity sqrt(H / scale): the forks' 0.1-1 nats stay visible beside a larger max."""
    alpha = min(1.0, entropy / scale) ** 0.5 if scale > 0 and entropy > 0 else 0.0
    return f"rgba(214,39,40,{alpha:.2f})"


def _token_html(trace: TokenTrace, threshold: float, scale: float) -> str:
    spans = []
    for token, h, p in zip(trace.tokens, trace.entropy, trace.prob, strict=True):
        text = (
            html.escape(token.replace(" ", "\u2423")) if token.strip() == "" else html.escape(token)
        )
        fork = " fork" if h >= threshold else ""
        spans.append(
            f"<span class='t{fork}' style='background:{_shade(h, scale)}' "
            f"title='{html.escape(repr(token))}: H = {h:.3f} nats, p = {p:.3f}'>{text}</span>"
        )
    mark = "right" if trace.correct else "wrong"
    return f"<span class='resp'>{''.join(spans)}</span> <span class='{mark}'>{mark}</span>"


def _position_svg(means: Mapping[str, list[float]], width: int = 900, height: int = 260) -> str:
    """Mean entropy by response position, one line per policy, as inline SVG."""
    longest = max((len(v) for v in means.values()), default=1)
    top = max((max(v) for v in means.values() if v), default=1.0) or 1.0
    left, bottom, right, up = 44, 30, 10, 10
    plot_w, plot_h = width - left - right, height - bottom - up

    def height_of(value: float) -> float:  # square-root scale: 0.01 nats stays visible beside 1
        return plot_h * (max(value, 0.0) / top) ** 0.5

    def x_of(i: int) -> float:
        return left + plot_w * i / max(longest - 1, 1)

    def xy(i: int, value: float) -> str:
        return f"{x_of(i):.1f},{up + plot_h - height_of(value):.1f}"

    ticks = [t for t in (0.01, 0.1, 1.0, 10.0) if t < top]
    step = next(n for n in (1, 2, 5, 10, 20, 50, 100, 200, 500, 10**9) if longest / n <= 12)
    positions = range(0, longest, step)

    parts = [
        f"<svg viewBox='0 0 {width} {height}' width='100%' style='max-width:{width}px' "
        "role='img' aria-label='mean token entropy by response position'>",
        f"<line x1='{left}' y1='{up + plot_h}' x2='{left + plot_w}' y2='{up + plot_h}' stroke='#888'/>",
        f"<line x1='{left}' y1='{up}' x2='{left}' y2='{up + plot_h}' stroke='#888'/>",
        f"<text x='{left - 4}' y='{up + 8}' font-size='10' text-anchor='end'>{top:.2f}</text>",
        f"<text x='{left - 4}' y='{up + plot_h}' font-size='10' text-anchor='end'>0</text>",
        *(
            f"<line x1='{left}' x2='{left + plot_w}' y1='{up + plot_h - height_of(t):.1f}' "
            f"y2='{up + plot_h - height_of(t):.1f}' stroke='#eee'/><text x='{left - 4}' "
            f"y='{up + plot_h - height_of(t) + 3:.1f}' font-size='10' text-anchor='end'>{t:g}</text>"
            for t in ticks
        ),
        *(
            f"<text x='{x_of(i):.1f}' y='{up + plot_h + 12}' font-size='10' "
            f"text-anchor='middle'>{i}</text>"
            for i in positions
        ),
        f"<text x='{left + plot_w / 2}' y='{height - 4}' font-size='11' text-anchor='middle'>"
        "response position (token)</text>",
        f"<text x='12' y='{up + plot_h / 2}' font-size='11' text-anchor='middle' "
        f"transform='rotate(-90 12 {up + plot_h / 2})'>mean entropy (nats, √ scale)</text>",
    ]
    for index, ((name, values), colour) in enumerate(zip(means.items(), PALETTE * 4, strict=False)):
        if values:
            points = " ".join(xy(i, v) for i, v in enumerate(values))
            dash = " stroke-dasharray='5 3'" if index == 0 else ""
            parts.append(
                f"<polyline fill='none' stroke='{colour}' stroke-width='2'{dash} points='{points}'>"
                f"<title>{html.escape(name)}</title></polyline>"
            )
    parts.append("</svg>")
    legend = " ".join(
        f"<span style='color:{colour}'>&#9632; {html.escape(name)}</span>"
        for name, colour in zip(means, PALETTE * 4, strict=False)
    )
    return "".join(parts) + f"<div class='legend'>{legend}</div>"


STYLE = (
    ".tv{font-family:sans-serif;line-height:1.5}"
    ".tv .resp{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:14px;white-space:pre-wrap;"
    "word-break:break-all}"
    ".tv .t{padding:1px 0;border-bottom:2px solid transparent}"
    ".tv .t.fork{border-bottom:2px solid #000;font-weight:bold}"
    ".tv table{border-collapse:collapse;width:100%}"
    ".tv td{border-top:1px solid #ddd;padding:.25em .5em;vertical-align:top}"
    ".tv td.policy{white-space:nowrap;font-size:.9em;color:#333;width:9em}"
    ".tv .right{color:#2a7;font-size:.8em}.tv .wrong{color:#c33;font-size:.8em}"
    ".tv .prompt{margin-top:1.2em;font-family:ui-monospace,Menlo,Consolas,monospace;color:#555}"
    ".tv .scale{display:inline-block;width:160px;height:12px;vertical-align:middle;"
    "background:linear-gradient(to right,rgba(214,39,40,0),rgba(214,39,40,1))}"
    ".tv .legend span{margin-right:1em;font-size:.9em}"
    "@media (max-width:640px){.tv td{display:block;border:0}.tv td.policy{width:auto;padding-bottom:0}"
    ".tv tr{display:block;border-top:1px solid #ddd}}"
)


def token_view_fragment(
    policies: Mapping[str, Sequence[TokenTrace]],
    prompts: Mapping[str, str],
    threshold: float,
    shown: int = 4,
) -> str:
    """The view as an HTML fragment (``<div class='tv'>``, with its own style): the first
    ``shown`` prompts, one row per policy, and the per-position means over every response."""
    scale = max((h for ts in policies.values() for t in ts for h in t.entropy), default=1.0)
    means = {name: position_means(traces) for name, traces in policies.items()}
    forks = {
        name: sum(h >= threshold for t in traces for h in t.entropy)
        / max(1, sum(len(t.entropy) for t in traces))
        for name, traces in policies.items()
    }
    bar = (
        f"at least {threshold:.3f} nats"
        if threshold < float("inf")
        else "none: every token is certain"
    )
    parts = [
        f"<div class='tv'><style>{STYLE}</style>",
        "<p>Each sampled token is shaded by its entropy under the policy that sampled it "
        f"(white: 0, darkest: {scale:.2f} nats; square-root scale). <b>Underlined bold</b> tokens "
        f"are forks: entropy {bar}, the bar above which the base model's highest-entropy tokens "
        f"carry {FORK_MASS:.0%} of its entropy, the same for every policy. Hover a token for its "
        "entropy and probability.</p>",
        "<p><span class='scale'></span> 0 → "
        f"{scale:.2f} nats &nbsp; share of tokens that are forks: "
        + ", ".join(f"{html.escape(n)} {f:.1%}" for n, f in forks.items())
        + "</p>",
    ]
    first = next(iter(policies.values()), [])
    for trace in first[:shown]:
        parts.append(f"<div class='prompt'>{html.escape(prompts[trace.problem_id])}</div><table>")
        for name, traces in policies.items():
            match = next(t for t in traces if t.problem_id == trace.problem_id)
            parts.append(
                f"<tr><td class='policy'>{html.escape(name)}</td>"
                f"<td>{_token_html(match, threshold, scale)}</td></tr>"
            )
        parts.append("</table>")
    responses = len(first)
    parts.append(
        f"<h3>Mean entropy by response position ({responses} responses per policy)</h3>"
        + _position_svg(means)
    )
    parts.append("</div>")
    return "\n".join(parts)


def render_token_view(
    policies: Mapping[str, Sequence[TokenTrace]],
    prompts: Mapping[str, str],
    threshold: float,
    title: str = "Token entropy: where the forks are",
    shown: int = 4,
) -> str:
    """The whole page: ``token_view_fragment`` in a self-contained HTML document."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='max-width:1100px;margin:1.5em auto;padding:0 1em'>"
        f"<h1 style='font-family:sans-serif'>{html.escape(title)}</h1>"
        + token_view_fragment(policies, prompts, threshold, shown)
        + "</body></html>"
    )


def token_view_body(page: str) -> str:
    """The fragment of a page ``render_token_view`` wrote (to embed it in the report)."""
    start, end = page.find("<div class='tv'>"), page.rfind("</body>")
    if start < 0 or end < 0:
        raise ValueError("not a token-entropy page (no <div class='tv'> ... </body>)")
    return page[start:end]
