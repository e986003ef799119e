"""The HTML report: tables whose cells hold pipes, one-seed rows, the stamp, a phone's viewport."""

from __future__ import annotations

import re

from entropy_rl.report import acceptance_markdown, method_table_markdown, render_report, run_stamp


def _rows(page: str) -> list[list[str]]:
    return [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", page)
    ]


def test_a_check_named_with_pipes_stays_one_cell_and_one_seed_says_n_1(tmp_path):
    checks = [
        {"check": "early-third fit predicts final accuracy (|error|)", "value": 0.068,
         "target": "<= 0.05", "pass": False},
        {"check": "covariance positive", "value": 0.98, "target": ">= 0.8", "pass": True},
    ]  # fmt: skip
    table = [{"method": "grpo", "entropy_final": {"mean": 0.002, "std": 0.0, "n": 1}},
             {"method": "kl_cov", "entropy_final": {"mean": 0.004, "std": 0.001, "n": 3}}]  # fmt: skip
    sections = [
        {"heading": "Science acceptance", "table": acceptance_markdown(checks)},
        {"heading": "Methods", "table": method_table_markdown(table)},
    ]
    page = render_report("study", sections, stamp=run_stamp("config/config.yaml"))
    rows = _rows(page)
    assert [len(r) for r in rows] == [5, 5, 5, 2, 2, 2]
    assert (
        rows[1][0] == "early-third fit predicts final accuracy (|error|)" and rows[1][4] == "FAIL"
    )
    assert rows[4] == ["grpo", "0.002 (n = 1)"] and rows[5] == ["kl_cov", "0.004 ± 0.001"]
    assert '<td class="fail">FAIL</td>' in page
    assert "name='viewport'" in page
    stamp = re.search(r"<p class='stamp'>(.*?)</p>", page).group(1)
    assert "commit: " in stamp and "config: config/config.yaml" in stamp and "cores" in stamp


def test_the_reports_findings_are_bullets_with_their_lead_in_bold_and_escaped():
    page = render_report(
        "study",
        [{"heading": "What this run found", "text": "On CPU <x>: 3 pass.",
          "items": ["**The law** R = −a·exp(H) + b fits <well>", "plain & simple"]}],
    )  # fmt: skip
    assert "<p>On CPU &lt;x&gt;: 3 pass.</p>" in page
    assert "<li><strong>The law</strong> R = −a·exp(H) + b fits &lt;well&gt;</li>" in page
    assert "<li>plain &amp; simple</li>" in page
