# Paths and helpers shared by the rule files. Results live under results/<profile>/ (DESIGN.md §6).
import os
import sys

# Rules call the `entropy-rl` CLI. Without --use-conda, use the one installed beside this
# Snakemake (e.g. .venv/bin), so the pipeline works whether or not the venv is activated.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))

RESULTS = f"results/{config['profile']}"
FIGURES = f"{RESULTS}/figures"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
CONDA_ENV = "../envs/{}.yaml".format(config.get("conda_env", "cpu"))

THEORY_FIGURES = ["theory_predicted_vs_exact", "theory_lemma1_remainder"]


def figure_files(names, exts=(".png", ".pdf")):
    """The PNG and PDF files of the named figures under FIGURES."""
    return [f"{FIGURES}/{name}{ext}" for name in names for ext in exts]


def docs_figure_names():
    """Figures copied into docs/figures/ (only the profile that the docs describe)."""
    return THEORY_FIGURES if config["docs"]["update_figures"] else []


def final_outputs():
    """Everything `rule all` asks for."""
    return [
        f"{RESULTS}/theory/summary.json",
        *figure_files(THEORY_FIGURES),
        *[f"docs/figures/{name}.png" for name in docs_figure_names()],
    ]
