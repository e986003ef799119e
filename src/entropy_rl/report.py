"""The HTML report: every figure (embedded), the tables and the science-acceptance checks."""

from __future__ import annotations

import base64
import datetime
import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from entropy_rl.analysis.claims import CLAIMS
from entropy_rl.figures import READABLE_SCALE, png_width
from entropy_rl.provenance import cpu_machine, git_commit

__all__ = [
    "acceptance_markdown",
    "comparison_markdown",
    "findings",
    "findings_markdown",
    "law_table_markdown",
    "mechanism_markdown",
    "method_table_markdown",
    "render_report",
    "run_stamp",
    "study_report",
    "theory_markdown",
    "write_study_tables",
]


def _fmt(cell: Any) -> str:
    if isinstance(cell, dict) and "mean" in cell:
        if cell.get("n") == 1:  # one seed: no spread to report
            return f"{cell['mean']:.3f} (n = 1)"
        return f"{cell['mean']:.3f} ± {cell['std']:.3f}"
    if isinstance(cell, float):
        return f"{cell:.3f}"
    if isinstance(cell, bool):
        return "pass" if cell else "FAIL"
    return str(cell)


# The method comparison in two tables, each narrow enough for a page: what training did, and how
# the final policies do on the held-out split (and beyond it).
TABLE_COLUMNS = {
    "training": [
        ("method", "method"),
        ("loss", "loss"),
        ("seeds", "seeds"),
        ("entropy_final", "final entropy"),
        ("entropy_late", "late-run entropy (last 10% of steps)"),
        ("accuracy_final", "final rollout accuracy (exact in the tabular world)"),
        ("val_accuracy_final", "validation accuracy (sampled, last evaluation)"),
        ("target_rolling_within_10pct", "steps within 10% of the entropy target"),
    ],
    "evaluation": [
        ("method", "method"),
        ("heldout_pass@1", "held-out pass@1"),
        ("heldout_pass@k", "held-out pass@k"),
        ("heldout_greedy", "held-out greedy"),
        ("heldout_greedy_easy", "greedy, easy family"),
        ("heldout_greedy_hard", "greedy, hard family"),
        ("ood_pass@1", "OOD pass@1"),
        ("benchmark_pass@1", "benchmarks pass@1"),
    ],
}


def method_table_markdown(table: list[dict[str, Any]]) -> str:
    """The method comparison (mean ± std over seeds) as markdown: a training table and, where the
    rows have evaluations, an evaluation table, separated by a blank line. A column no row has is
    left out, and so is a row with none of a table's numbers (the base model in training)."""
    ks = sorted(  # the largest k of the held-out pass@k, as evaluated (pass@4, pass@64)
        {int(key.split("@")[1]) for row in table for key in row if key.startswith("heldout_pass@")}
        - {1}
    )
    parts = []
    for part in TABLE_COLUMNS.values():
        wanted = [
            (f"heldout_pass@{ks[-1]}", f"held-out pass@{ks[-1]}")
            if key == "heldout_pass@k"
            else (key, title)
            for key, title in part
            if key != "heldout_pass@k" or ks
        ]
        columns = [(key, title) for key, title in wanted if any(key in row for row in table)]
        if len(columns) <= 1:  # the method names alone: nothing to show
            continue
        lines = [
            "| " + " | ".join(title for _, title in columns) + " |",
            "|" + "---|" * len(columns),
        ]
        measured = [key for key, _ in columns if key not in ("method", "loss", "seeds")]
        for row in table:
            if not any(key in row for key in measured):  # the base model has no training row
                continue
            lines.append("| " + " | ".join(_cell(row.get(key, "")) for key, _ in columns) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _with_interval(stat: dict[str, Any], signed: bool = False) -> str:
    """``1.052 (0.913 to 1.220)``; ``+0.031 (-0.012 to +0.075)`` for a difference; ``n/a`` for a
    statistic with no finite estimate."""
    if not np.isfinite(stat.get("estimate", float("nan"))):
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(stat['estimate'])} ({f.format(stat['lo'])} to {f.format(stat['hi'])})"


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    """Every method against GRPO (:func:`~entropy_rl.analysis.study.comparison_table`) as two
    markdown tables narrow enough for a page: the verdicts (late-run entropy ratio and held-out
    greedy difference, each with its 95% interval and its three-state verdict), then the sampled
    accuracies and the hard family. Empty when no row has an evaluation."""
    rows = [r for r in rows if np.isfinite(r["greedy_diff"].get("estimate", float("nan")))]
    if not rows:
        return ""
    entropy_claim, greedy_claim = CLAIMS["kept_entropy"], CLAIMS["above_grpo"]
    verdicts = [
        "| method | runs | late-run entropy ÷ GRPO's (95% interval) | "
        f"verdict: ratio {entropy_claim.op} {entropy_claim.threshold:g} | "
        "held-out greedy − GRPO's (95% interval) | "
        f"verdict: difference {greedy_claim.op} {greedy_claim.threshold:g} |",
        "|---|---|---|---|---|---|",
    ]
    k = next((r["k"] for r in rows if "k" in r), None)
    accuracies = [
        "| method | held-out pass@1 − GRPO's | "
        + (f"held-out pass@{k} − GRPO's | " if k else "")
        + "runs that learn the hard family |",
        "|---|---|" + ("---|" if k else "") + "---|",
    ]
    for r in rows:
        verdicts.append("| " + " | ".join((
            r["method"], str(r["runs"]), _with_interval(r["entropy_ratio"]),
            r["entropy_verdict"].replace("fail", "FAIL"), _with_interval(r["greedy_diff"], True),
            r["greedy_verdict"].replace("fail", "FAIL"),
        )) + " |")  # fmt: skip
        learned = f"{r['learned'][0]} of {r['learned'][1]}" if "learned" in r else "n/a"
        cells = [r["method"], _with_interval(r["sampled_diff"], True)]
        cells += [_with_interval(r["passk_diff"], True)] if k else []
        accuracies.append("| " + " | ".join([*cells, learned]) + " |")
    return "\n".join(verdicts) + "\n\n" + "\n".join(accuracies) + "\n"


def theory_markdown(summary: dict[str, Any]) -> str:
    """The theory stage's numbers (``theory/summary.json``, :func:`~entropy_rl.theory.sweeps.sweep_summary`)
    as markdown: per update rule how well the first-order prediction (Theorem 1 for policy
    gradient, Theorem 2 for natural policy gradient) matches the exact entropy change, then the
    log-log slopes of Lemma 1's remainder (2 for a second-order remainder)."""
    lines = [
        "| update | Pearson r, η ≤ 0.1 | same sign, η ≤ 0.1 | median relative error, smallest η "
        "| Pearson r, every η |",
        "|---|---|---|---|---|",
    ]
    names = {"pg": "policy gradient (Theorem 1)", "npg": "natural policy gradient (Theorem 2)"}
    for update, p in summary["prediction"].items():
        key = next(k for k in p if k.startswith("median_relative_error_eta_"))
        error, eta = p[key], key.rsplit("_", 1)[1]
        lines.append(
            f"| {names.get(update, update)} | {p['pearson_r_eta_le_0.1']:.4f} | "
            f"{100 * p['sign_agreement_eta_le_0.1']:.1f}% | {100 * error:.3g}% (η = {eta}) | "
            f"{p['pearson_r_all_eta']:.3f} |"
        )
    slopes = summary["remainder"]["slopes"]
    lo, hi = summary["remainder"]["eta_range"]
    lines += [
        "",
        "| Lemma 1's remainder | random policies | smallest slope | largest slope |",
        "|---|---|---|---|",
        f"| log-log slope over η from {lo:g} to {hi:g} | {len(slopes)} | {min(slopes):.3f} | "
        f"{max(slopes):.3f} |",
    ]
    return "\n".join(lines) + "\n"


def findings(
    checks: list[dict[str, Any]], comparison: list[dict[str, Any]], machine: str
) -> tuple[str, list[str]]:
    """What one run found: a line naming the machine and the verdict counts, and up to five
    sentences with the run's own numbers, each ``**lead**: text`` (the collapse, the law, the
    mechanism, every method against GRPO from :func:`~entropy_rl.analysis.study.comparison_table`,
    the acceptance rows that do not hold). Each number is an acceptance row's or a comparison
    row's estimate with its 95% interval and verdict, so a rerun rewrites the sentences. A
    sentence whose rows the run lacks is left out."""
    rows = {c["claim"]: c for c in checks if "claim" in c and np.isfinite(c.get("value", np.nan))}
    words = {"pass": "shown", "fail": "not shown", "inconclusive": "inconclusive"}

    def stat(claim: str) -> str:
        """``0.597 (95% interval 0.267 to 0.767: inconclusive)``, as the acceptance table has it."""
        c = rows[claim]
        interval = "95% interval {:.3f} to {:.3f}: ".format(*c["interval"]) if c["interval"] else ""
        return f"{c['value']:.3f} ({interval}{words[c['verdict']]})"

    items = []
    if {"entropy_drop_first_third", "accuracy_gain"} <= rows.keys():
        items.append(
            "**Entropy collapses under GRPO**: the share of its entropy lost in the first third "
            f"of training is {stat('entropy_drop_first_third')}, while held-out accuracy rises "
            f"by {stat('accuracy_gain')}."
        )
    if "law_r2" in rows:
        items.append(
            "**The law** R = −a·exp(H) + b fits GRPO's runs with pooled R² "
            f"{stat('law_r2')}, against the paper's bar of {CLAIMS['law_r2'].threshold:g}."
        )
    if "lemma1_r" in rows:
        tabular = (
            f", in the tabular simulator {stat('tabular_lemma1_r')}"
            if "tabular_lemma1_r" in rows
            else ""
        )
        items.append(
            "**The mechanism**: Lemma 1's covariance predicts each step's entropy change with "
            f"Pearson r {stat('lemma1_r')} in the language model{tabular}."
        )
    above = {"pass": "shown above GRPO's", "fail": "shown not above GRPO's",
             "inconclusive": "inconclusive"}  # fmt: skip
    kept = {"pass": "kept (shown)", "fail": "not kept (shown)", "inconclusive": "inconclusive"}
    parts = [
        f"{r['method']}: {_with_interval(r['entropy_ratio'])} times GRPO's late-run entropy, "
        f"{kept[r['entropy_verdict']]}; held-out greedy accuracy "
        f"{_with_interval(r['greedy_diff'], True)}, {above[r['greedy_verdict']]}"
        for r in comparison
        # a method on one base model (a sweep's end) has no interval over base models
        if np.isfinite(r["greedy_diff"].get("estimate", np.nan)) and r["bases"] > 1
    ]
    if parts:
        items.append("**Against GRPO**, paired on base models and seeds: " + "; ".join(parts) + ".")
    failing = [c["check"] for c in checks if c.get("verdict") == "fail"]
    open_rows = sum(c.get("verdict") == "inconclusive" for c in checks)
    fails = (
        f"{len(failing)} {'row FAILs' if len(failing) == 1 else 'rows FAIL'}: " + "; ".join(failing)
        if failing
        else "no row fails"
    )
    items.append(
        f"**What does not hold here**: {fails}. {open_rows} "
        f"{'row is' if open_rows == 1 else 'rows are'} inconclusive (their intervals straddle "
        "the target)."
    )
    return f"On {machine}: {verdict_counts(checks)} acceptance rows.", items


def findings_markdown(
    checks: list[dict[str, Any]], comparison: list[dict[str, Any]], machine: str
) -> str:
    """:func:`findings` as markdown (``tables/findings.md``, which the docs' front page
    includes): the opening line, then one bullet per sentence."""
    opening, items = findings(checks, comparison, machine)
    return "\n".join([opening, "", *(f"- {item}" for item in items)]) + "\n"


def mechanism_markdown(worlds: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Which objectives the covariance mechanism explains, per method and world (``worlds`` maps a
    world's name to its analysis's ``methods``): Lemma 1's Pearson r (the measured entropy change
    against its first-order prediction from the update's own logit change, which holds for any
    update) and the r of the entropy change against ``−Cov(log π, A)`` (Theorems 1-2: what a
    policy gradient's advantage alone predicts). Lemma 1's r is pooled over every check of the
    method's runs (the acceptance rows' and the entropy-change figure's statistic); the
    covariance's r is the mean over runs, each run's own batches."""
    names = list(worlds)
    methods = list(dict.fromkeys(m for entries in worlds.values() for m in entries))
    header = ["method"] + [
        f"{w}: {what}"
        for w in names
        for what in ("Lemma 1 r, pooled", "r with −Cov(log π, A), mean of runs")
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        cells = [method]
        for w in names:
            entry = worlds[w].get(method, {})
            pooled = entry.get("lemma1_r_pooled", float("nan"))
            cov = entry.get("entropy_cov_corr", {}).get("mean", float("nan"))
            cells += [f"{v:.3f}" if np.isfinite(v) else "n/a" for v in (pooled, cov)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def law_table_markdown(methods: dict[str, dict[str, Any]]) -> str:
    """The law per method (pooled over seeds): ``a``, ``b``, R², the ceiling ``b − a`` with its
    95% interval, the straight line's R² on the same points, the early-third prediction's mean
    |error| at the last evaluation, and, where the law is fitted on the validation entropy, the
    R² the same fit has on the rollout batch's entropy."""
    rollout = any("law_r2_rollout_entropy" in entry for entry in methods.values())
    lines = [
        "| method | a | b | R² | ceiling b − a (95% interval) | straight line R² | "
        r"early-third fit, \|error\| at the end |"
        + (" R² on the rollout entropy |" if rollout else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if rollout else ""),
    ]
    for method, entry in methods.items():
        if "law" not in entry:
            continue
        law, line = entry["law"], entry.get("law_line", {})
        early = entry.get("early_fit", {}).get("mean_abs_final_error", float("nan"))
        lo, hi = law["ceiling_ci"]
        cells = (
            method, law["a"], law["b"], law["r2"], f"{law['ceiling']:.3f} ({lo:.3f}–{hi:.3f})",
            line.get("r2_line", float("nan")), early,
        ) + ((entry.get("law_r2_rollout_entropy", float("nan")),) if rollout else ())  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """A markdown table cell: the formatted value with its pipes escaped (``|error|``)."""
    return _fmt(value).replace("|", "\\|")


def acceptance_markdown(checks: list[dict[str, Any]]) -> str:
    """The checks as a markdown table: each row's estimate (a ``detail``, e.g. what it is averaged
    over, follows it), its 95% interval, the target and the verdict (pass, FAIL, inconclusive)."""
    lines = ["| check | estimate | 95% interval | target | verdict |", "|---|---|---|---|---|"]
    for check in checks:
        value = _fmt(check["value"]) + (f" ({check['detail']})" if check.get("detail") else "")
        interval = check.get("interval")
        span = f"{interval[0]:.3f} to {interval[1]:.3f}" if interval else "(exact)"
        verdict = check.get("verdict", "pass" if check["pass"] else "fail")
        cells = (check["check"], value, span, check["target"], verdict.replace("fail", "FAIL"))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_counts(checks: list[dict[str, Any]]) -> str:
    """``21 pass, 2 FAIL, 3 inconclusive of 26``."""
    verdicts = [c.get("verdict", "pass" if c["pass"] else "fail") for c in checks]
    parts = [
        f"{verdicts.count(v)} {v.replace('fail', 'FAIL')}" for v in ("pass", "fail", "inconclusive")
    ]
    return f"{', '.join(parts)} of {len(checks)}"


def _md_table_to_html(markdown: str) -> str:
    """HTML of the markdown table(s) in ``markdown`` (tables separated by blank lines)."""
    tables = [block for block in re.split(r"\n\s*\n", markdown.strip()) if block.strip()]
    return "\n".join(_one_table_to_html(block) for block in tables)


def _one_table_to_html(markdown: str) -> str:
    rows = [
        [cell.replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        for line in markdown.strip().splitlines()
        if not line.startswith("|---")
    ]
    head, body = rows[0], rows[1:]
    out = [
        "<div class='scroll'><table>",  # a table wider than a phone scrolls in its box
        "<tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head) + "</tr>",
    ]
    for row in body:
        cells = [c.strip() for c in row]
        out.append(
            "<tr>"
            + "".join(
                f'<td class="{"fail" if c == "FAIL" else ""}">{html.escape(c)}</td>' for c in cells
            )
            + "</tr>"
        )
    return "\n".join([*out, "</table></div>"])


def run_stamp(config_path: str | os.PathLike[str]) -> dict[str, str]:
    """What made a report: the commit, the date, the config file and the machine."""
    return {
        "commit": git_commit() or "unknown (not a git checkout)",
        "date": datetime.date.today().isoformat(),
        "config": str(config_path),
        "machine": f"{cpu_machine()}, {os.cpu_count()} cores",
    }


def render_report(
    title: str, sections: list[dict[str, Any]], stamp: dict[str, str] | None = None
) -> str:
    """Self-contained HTML: each section has a heading, text, an optional table, an optional
    HTML fragment of this package's own making, and figures (``{"path": png, "caption": text}``) embedded as base64 so the file can be mailed or archived."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
        "img{max-width:100%;height:auto}.scroll{overflow-x:auto}figure{margin:1.5em 0;overflow-x:auto}figcaption{color:#333;font-size:.92em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;font-size:.9em}"
        "td.fail{background:#fdd;font-weight:bold}.stamp{color:#555;font-size:.9em}"
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if stamp:
        parts.append(
            "<p class='stamp'>"
            + " · ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in stamp.items())
            + "</p>"
        )
    for section in sections:
        parts.append(f"<h2>{html.escape(section['heading'])}</h2>")
        if section.get("text"):
            parts.append(f"<p>{html.escape(section['text'])}</p>")
        if section.get("items"):  # bullets, each ``**lead**: text``
            parts.append(
                "<ul>" + "".join(f"<li>{_bold_lead(i)}</li>" for i in section["items"]) + "</ul>"
            )
        if section.get("table"):
            parts.append(_md_table_to_html(section["table"]))
        if section.get("html"):  # a fragment this package rendered (e.g. the token-entropy view)
            parts.append(section["html"])
        for figure in section.get("figures", []):
            raw = Path(figure["path"]).read_bytes()
            data = base64.b64encode(raw).decode()
            # readable on a phone: a minimum width, the figure scrolling inside its box
            width = round(png_width(raw[:24]) * READABLE_SCALE)
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' style='min-width:{width}px' "
                f"alt='{html.escape(figure['caption'])}'>"
                f"<figcaption>{html.escape(figure['caption'])}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def runs_markdown(study: Any) -> str:
    """Every base model and every run as markdown: each base model's held-out pass@k and its
    sampled accuracy per family (how rare the hard family's path is), then each run's late-run
    entropy and final greedy accuracy, overall and per family, by base model and seed."""
    lines = []
    if study.bases:
        first = next(iter(study.bases.values()))
        k = max(
            (int(key.split("@")[1]) for key in first.get("heldout", {}) if key.startswith("pass@")),
            default=1,
        )
        families = list(first.get("heldout", {}).get("family_pass@1", {}))
        head = ["base model (SFT seed)", f"held-out pass@{k}"]
        head += [f"{f}: solved per sample" for f in families]  # the task's families, if any
        lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---|" * len(families)]
        for b, evaluation in study.bases.items():
            held = evaluation.get("heldout", {})
            cells = [str(b), f"{held.get(f'pass@{k}', float('nan')):.3f}"]
            cells += [f"{held.get('family_pass@1', {}).get(f, float('nan')):.4f}" for f in families]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    families = sorted({f for runs in study.lm.values() for r in runs
                       for f in r.evaluation.get("heldout_greedy", {}).get("family_pass@1", {})})  # fmt: skip
    lines += [
        "| method | base model | seed | late-run entropy | held-out greedy | "
        + "".join(f"greedy: {f} | " for f in families),
        "|---|---|---|---|---|" + "---|" * len(families),
    ]
    for method, runs in study.lm.items():
        for r in sorted(runs, key=lambda run: (run.base, run.seed)):
            greedy = r.evaluation.get("heldout_greedy", {})
            cells = [method, str(r.base), str(r.seed), f"{r.summary['entropy_late']:.4f}",
                     f"{greedy.get('pass@1', float('nan')):.3f}"]  # fmt: skip
            cells += [
                f"{greedy.get('family_pass@1', {}).get(f, float('nan')):.2f}" for f in families
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_study_tables(tables: Path, study: Any) -> None:
    """The run's tables under ``tables``: methods (the base model first), tabular methods,
    acceptance and law as markdown, and every method metric as ``methods.csv``."""
    import csv
    import io

    from entropy_rl.io import write_text

    lm_analysis = study.lm_analysis
    base_row = [lm_analysis["base_row"]] if "base_row" in lm_analysis else []
    write_text(tables / "methods.md", method_table_markdown(base_row + lm_analysis["table"]))
    write_text(tables / "tabular_methods.md", method_table_markdown(study.tab_analysis["table"]))
    write_text(
        tables / "acceptance.md",
        f"Machine: {cpu_machine()}; {verdict_counts(study.checks)} rows.\n\n"
        + acceptance_markdown(study.checks),
    )
    write_text(tables / "law.md", law_table_markdown(lm_analysis["methods"]))
    write_text(
        tables / "mechanism.md",
        mechanism_markdown(
            {"tabular": study.tab_analysis["methods"], "toy LM": lm_analysis["methods"]}
        ),
    )
    write_text(tables / "comparison.md", comparison_markdown(lm_analysis.get("comparison", [])))
    write_text(
        tables / "findings.md",
        findings_markdown(study.checks, lm_analysis.get("comparison", []), cpu_machine()),
    )
    write_text(tables / "runs.md", runs_markdown(study))
    theory = tables.parent / "theory" / "summary.json"
    if theory.exists():
        write_text(tables / "theory.md", theory_markdown(json.loads(theory.read_text())))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "loss", "metric", "mean", "std", "n"])
    for row in lm_analysis["table"]:
        for key, value in row.items():
            if isinstance(value, dict) and "mean" in value:
                writer.writerow(
                    [row["method"], row["loss"], key, value["mean"], value["std"], value["n"]]
                )
    write_text(tables / "methods.csv", buffer.getvalue())


def _spread(values: list[float]) -> str:
    """``0.412`` for one value, ``0.412 (0.380–0.455)`` for several: the mean and the range."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def study_report(
    config: dict[str, Any], results: Path, config_path: str | os.PathLike[str]
) -> tuple[str, int, int]:
    """The study's self-contained HTML page from the files under ``results``: acceptance, the
    base model, theory, collapse, the law, the mechanism, the token view, interventions, the
    tabular world. Returns the page and how many of how many acceptance checks pass."""
    data = _ReportData.read(config, results)
    sections = [
        _findings_section(data), _acceptance_section(data), _base_section(data), _theory_section(data),
        _collapse_section(data), _law_section(data), _covariance_section(data),
        *_token_section(data), _interventions_section(data), _tabular_section(data),
    ]  # fmt: skip
    checks = data.analysis["acceptance"]
    title = f"entropy-rl study: {config['profile']}"
    page = render_report(title, sections, stamp=run_stamp(config_path))
    return page, sum(c["pass"] for c in checks), len(checks)


@dataclass(frozen=True)
class _ReportData:
    """What the report's sections read: the config, the run's analysis and theory summaries,
    every base model's summary and GRPO's method name, analysis and table row."""

    config: dict[str, Any]
    results: Path
    analysis: dict[str, Any]
    theory: dict[str, Any]
    bases: list[dict[str, Any]]
    grpo: str

    @classmethod
    def read(cls, config: dict[str, Any], results: Path) -> _ReportData:
        from entropy_rl.analysis.study import methods_with_loss
        from entropy_rl.config import BASE_DIR, base_seeds

        def read_json(path: Path) -> dict[str, Any]:
            return json.loads(path.read_text())

        folder = results / config["model_name"]
        bases = [read_json(folder / BASE_DIR.format(base=b) / "base_summary.json")
                 for b in base_seeds(config)]  # fmt: skip
        return cls(config, results, read_json(results / "analysis" / "analysis.json"),
                   read_json(results / "theory" / "summary.json"), bases,
                   methods_with_loss(config["train"]["methods"], "grpo")[0])  # fmt: skip

    @property
    def g(self) -> dict[str, Any]:
        return self.analysis["lm"]["methods"][self.grpo]

    @property
    def g_row(self) -> dict[str, Any]:
        """GRPO's row of the methods table (over every base model and seed)."""
        rows = {row["method"]: row for row in self.analysis["lm"]["table"]}
        return rows[self.grpo]

    @property
    def pretrained(self) -> bool:
        return self.bases[0].get("source") == "pretrained"

    def fig(self, name: str, caption: str = "") -> list[dict]:
        """The figure, if the run drew it, with its caption (the registry's unless given)."""
        from entropy_rl.figures import FIGURES

        path = self.results / "figures" / f"{name}.png"
        return (
            [{"path": path, "caption": caption or FIGURES[name].caption}] if path.exists() else []
        )


def _bold_lead(item: str) -> str:
    """``**The law** fits`` as escaped HTML with the lead in ``<strong>``."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(item))


def _findings_section(d: _ReportData) -> dict[str, Any]:
    """What the run found (tables/findings.md), first in the report."""
    opening, items = findings(d.analysis["acceptance"], d.analysis["lm"].get("comparison", []),
                              cpu_machine())  # fmt: skip
    return {"heading": "What this run found", "text": opening, "items": items}


def _acceptance_section(d: _ReportData) -> dict[str, Any]:
    checks = d.analysis["acceptance"]
    return {
        "heading": "Science acceptance (docs/design.md)",
        "text": f"{verdict_counts(checks)} rows on this run of the {d.config['profile']} profile, "
        f"on {cpu_machine()}. A row passes only when its whole 95% interval holds the claim, "
        "fails when none of it does, and is inconclusive when the interval straddles the target.",
        "table": acceptance_markdown(checks),
    }


def _base_section(d: _ReportData) -> dict[str, Any]:
    from entropy_rl.config import base_seeds

    bases, base = d.bases, d.bases[0]
    if d.pretrained:
        return {"heading": "The base model", "text": f"The pretrained model {base['model']}."}
    return {"heading": "The base model", "text": (
        f"{len(bases)} {base['parameters']:,}-parameter Llama-architecture decoder(s) trained from "
        f"scratch by SFT, one per SFT seed ({', '.join(str(b) for b in base_seeds(d.config))}), "
        f"{np.mean([b['sft_seconds'] for b in bases]):.0f} s each: held-out pass@1 at temperature 1 = "
        f"{_spread([b['heldout_pass@1_t1'] for b in bases])}, greedy = "
        f"{_spread([b['heldout_accuracy_greedy'] for b in bases])}, out-of-distribution = "
        f"{_spread([b['ood_pass@1_t1'] for b in bases])}."
    )}  # fmt: skip


def _theory_section(d: _ReportData) -> dict[str, Any]:
    prediction, slopes = d.theory["prediction"], d.theory["remainder"]["slopes"]
    return {"heading": "The mechanism in exact arithmetic (theory)", "figures": d.fig(
        "theory_predicted_vs_exact",
        "Theorems 1-2 on random tabular policies: for step sizes <= 0.1 the first-order "
        "prediction and the exact entropy change correlate at "
        f"r = {prediction['pg']['pearson_r_eta_le_0.1']:.4f} (PG) and "
        f"r = {prediction['npg']['pearson_r_eta_le_0.1']:.4f} (NPG).",
    ) + d.fig(
        "theory_lemma1_remainder",
        f"Lemma 1's remainder shrinks as eta squared: fitted slopes {min(slopes):.3f}-{max(slopes):.3f}.",
    )}  # fmt: skip


def _collapse_section(d: _ReportData) -> dict[str, Any]:
    row = d.g_row
    final = row.get("val_accuracy_final", {}).get("mean", float("nan"))
    return {"heading": "Entropy collapse", "figures": d.fig(
        "collapse_grpo",
        f"GRPO, {row['seeds']} seeds: mean token entropy ends {row['entropy_drop_frac']['mean']:.0%} "
        f"below its start; held-out accuracy (sampled, in training) ends at {final:.3f}.",
    )}  # fmt: skip


def _law_section(d: _ReportData) -> dict[str, Any]:
    from entropy_rl.analysis.law import describe_line_comparison

    law, early, nan = d.g.get("law", {}), d.g.get("early_fit", {}), float("nan")
    return {"heading": "The law R = -a·exp(H) + b", "figures": d.fig(
        "law_grpo",
        f"Pooled GRPO points: a = {law.get('a', nan):.3f}, b = {law.get('b', nan):.3f}, "
        f"R² = {law.get('r2', nan):.3f}; predicted ceiling R(H=0) = {law.get('ceiling', nan):.3f}. "
        "Fitting only the first third of each run predicts the final accuracy with a mean absolute "
        f"error of {early.get('mean_abs_final_error', nan):.3f}. "
        + (describe_line_comparison(d.g["law_line"]) if "law_line" in d.g else ""),
    )}  # fmt: skip


def _covariance_section(d: _ReportData) -> dict[str, Any]:
    return {"heading": "What drives the entropy: the covariance", "figures": d.fig(
        "entropy_change",
        "Per-step measured entropy change against -Cov(log pi, delta z): r = "
        f"{d.g['lemma1_r_pooled']:.3f} on the language model's probe batch, pooled over every check "
        "of GRPO's runs.",
    ) + d.fig(
        "covariance",
        f"The mean token covariance is positive on {d.g['cov_positive_frac']['mean']:.0%} of GRPO's steps.",
    )}  # fmt: skip


def _token_section(d: _ReportData) -> list[dict[str, Any]]:
    from entropy_rl.token_view import token_view_body

    page = d.results / "token_entropy.html"
    if not page.exists():
        return []
    return [{
        "heading": "Where the entropy sits, token by token",
        "text": "The same held-out prompts sampled by the base model and by the first seed of "
        "each method (also as a page of its own: token_entropy.html).",
        "html": token_view_body(page.read_text()),
    }]  # fmt: skip


def _interventions_section(d: _ReportData) -> dict[str, Any]:
    lm = d.analysis["lm"]
    text = (
        "Held-out accuracies are of the final policies."
        if d.pretrained
        else "Held-out accuracies are of the final policies. The out-of-distribution split (one "
        "more term than training) and the paper's benchmarks are smoke tests at this scale: a "
        "model trained from scratch on one synthetic task does not solve them, the base model "
        "included, so their columns show that the evaluation runs end to end, not a difference "
        "between methods."
    )
    figures = ("methods", "interventions", "entropy_target", "entropy_bonus_sweep", "pass_at_k")
    comparison = comparison_markdown(lm.get("comparison", []))
    return {
        "heading": "Interventions",
        "text": text,
        "table": method_table_markdown(
            [*([lm["base_row"]] if "base_row" in lm else []), *lm["table"]]
        )
        + ("\n" + comparison if comparison else ""),
        "figures": [f for name in figures for f in d.fig(name)],
    }


def _tabular_section(d: _ReportData) -> dict[str, Any]:
    return {
        "heading": "The tabular simulator",
        "table": method_table_markdown(d.analysis["tabular"]["table"]),
        "figures": d.fig("tabular_methods") + d.fig("tabular_law"),
    }
