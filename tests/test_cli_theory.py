"""`entropy-rl theory`: the numerical theory checks write a passing summary and real figures."""

from __future__ import annotations

import json

import matplotlib.image
import pytest

from entropy_rl.cli import main


def test_theory_command_writes_passing_summary_and_figures(tmp_path):
    summary = tmp_path / "theory" / "summary.json"
    figures = tmp_path / "figures"
    assert (
        main(["theory", "--seed", "3", "--summary", str(summary), "--figures", str(figures)]) == 0
    )

    data = json.loads(summary.read_text())
    assert data["seed"] == 3
    assert all(data["checks"].values()), data["checks"]
    assert data["prediction"]["npg"]["pearson_r_eta_le_0.1"] >= 0.99
    assert all(abs(s - 2) <= 0.2 for s in data["remainder"]["slopes"])
    for name in ("theory_predicted_vs_exact", "theory_lemma1_remainder"):
        image = matplotlib.image.imread(figures / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 300
        assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    # atomic writes leave no temporary files behind
    assert not list(tmp_path.rglob("*.tmp"))


def test_theory_figures_are_byte_identical_for_the_same_seed(tmp_path):
    for run in ("a", "b"):
        main(
            [
                "theory",
                "--summary",
                str(tmp_path / run / "s.json"),
                "--figures",
                str(tmp_path / run),
            ]
        )
    for name in ("theory_predicted_vs_exact.png", "theory_lemma1_remainder.pdf"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err
