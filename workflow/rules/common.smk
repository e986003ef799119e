# Paths and helpers shared by the rule files. Results live under results/<profile>/ (docs/design.md, Results).
import os
import sys

# Rules call the `entropy-rl` CLI. Without --use-conda, use the one installed beside this
# Snakemake (e.g. .venv/bin), so the pipeline works whether or not the venv is activated.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))

RESULTS = f"results/{config['profile']}"
FIGURES = f"{RESULTS}/figures"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
TRACKING = f"{RESULTS}/tracking"  # train.loggers / tabular.loggers: TensorBoard events, MLflow
MODEL_DIR = f"{RESULTS}/{config['model_name']}"
CONDA_ENV = "../envs/{}.yaml".format(config.get("conda_env", "cpu"))

# the figures this config has, by the stage that draws them (the registry: entropy_rl.figures)
from entropy_rl.figures import figure_names

THEORY_FIGURES = figure_names(config, "theory")
STUDY_FIGURES = figure_names(config, "analyze")

wildcard_constraints:
    seed=r"\d+",
    base=r"\d+",
    method=r"[A-Za-z0-9_.-]+",


# where runs live: one template each (entropy_rl.config), read by the rules and by the analysis
from entropy_rl.config import BASE_DIR, LM_RUN_DIR, TABULAR_RUN_DIR, base_seeds, lm_runs, method_seeds

BASES = base_seeds(config)  # the base models, by SFT seed
BASE = f"{MODEL_DIR}/{BASE_DIR}"  # base model {base}
LM_RUN = f"{MODEL_DIR}/{LM_RUN_DIR}"  # an RL run: {method}, {base}, {seed}
TAB_RUN = f"{RESULTS}/tabular/{TABULAR_RUN_DIR}"
LM_RUNS = [(m, b, s) for m, runs in lm_runs(config).items() for b, s in runs]
TABULAR_RUNS = [
    (m, s) for m, seeds in method_seeds(config["tabular"]["methods"], config["tabular"]["seeds"]).items()
    for s in seeds
]
# the benchmarks every evaluation runs, named on its command line so `snakemake -n -p` shows them
BENCHMARK_LIST = ",".join(config["evaluate"].get("benchmarks", []))
# the token-entropy view samples the first run (base, seed) of every method
FIRST_RUNS = [(m, *runs[0]) for m, runs in lm_runs(config).items()]


def lm_files(name, runs=None):
    """``name`` (a file or folder path inside a run) of every RL run."""
    return [f"{LM_RUN.format(method=m, base=b, seed=s)}/{name}" for m, b, s in runs or LM_RUNS]


def base_files(name):
    """``name`` inside every base model's folder."""
    return [f"{BASE.format(base=b)}/{name}" for b in BASES]


# What each stage's CLI reads: only its own sections, so editing one section reruns one stage.
STAGE_SECTIONS = {
    "tabular": ["tabular"],
    "base_model": ["task", "base_model"],
    "train": ["task", "train"],
    "evaluate": ["task", "evaluate"],
    "study": None,  # analysis and report read everything
}


def stage_config(stage):
    sections = STAGE_SECTIONS[stage]
    return dict(config) if sections is None else {key: config[key] for key in sections}


def check_benchmark_files():
    from entropy_rl.data.benchmarks import benchmark_file

    pattern = config["evaluate"].get("benchmark_path", "samples")
    files = [benchmark_file(pattern, name) for name in config["evaluate"].get("benchmarks", [])]
    missing = [str(path) for path in files if path is not None and not path.is_file()]
    if missing:
        raise WorkflowError(
            f"evaluate.benchmark_path points at files that do not exist: {missing[:3]}; "
            "set evaluate.benchmark_path to your local copies (a pattern with {name}), "
            "'samples' for the package's eight-row samples, null to load from the hub, "
            "or evaluate.benchmarks to []"
        )



def check_settings():
    """Every stage's settings built from the config as its command will build them (the same
    classes, so the allowed values are the code's own): a bad value stops here, before any job."""
    from entropy_rl.config import check_pipeline_config

    try:
        check_pipeline_config(config)
    except ValueError as err:
        raise WorkflowError(f"config: {err}") from None


check_settings()  # first: it names a bad benchmark_path pattern
check_benchmark_files()


def base_model_ref(built):
    """The model RL starts from: the SFT folder, or base_model.pretrained (a hub id or folder)."""
    base = config["base_model"]
    return base["pretrained"] if base.get("source", "sft") == "pretrained" else built


def figure_files(names, exts=(".png", ".pdf")):
    """The PNG and PDF files of the named figures under FIGURES."""
    return [f"{FIGURES}/{name}{ext}" for name in names for ext in exts]


DOCS_PREFIX = config["docs"].get("figure_prefix", "")
# written by rule analyze
DOCS_TABLES = (
    "acceptance", "comparison", "findings", "mechanism", "methods", "tabular_methods", "law", "runs",
    "theory",
)


def docs_figure_names():
    """Figures copied into docs/figures/ as <figure_prefix><name>.png (only from the profiles
    the docs show: update_figures true; docs.figures picks some, default all)."""
    if not config["docs"]["update_figures"]:
        return []
    return config["docs"].get("figures") or THEORY_FIGURES + STUDY_FIGURES


def docs_table_names():
    """The run's tables copied into docs/tables/ as <figure_prefix><name>.md (update_figures)."""
    return list(DOCS_TABLES) if config["docs"]["update_figures"] else []


def final_outputs():
    """Everything `rule all` asks for. Every run is a target too, so deleting a run's folder
    reruns that run and what depends on it (not only when the study outputs are missing)."""
    return [
        *lm_files("eval/summary.json"),
        *[f"{TAB_RUN.format(method=m, seed=s)}/summary.json" for m, s in TABULAR_RUNS],
        f"{RESULTS}/theory/summary.json",
        *figure_files(THEORY_FIGURES),
        f"{RESULTS}/analysis/analysis.json",
        *base_files("eval/summary.json"),
        *figure_files(STUDY_FIGURES),
        f"{RESULTS}/report.html",
        *[f"docs/figures/{DOCS_PREFIX}{name}.png" for name in docs_figure_names()],
        *([f"docs/figures/{DOCS_PREFIX}token_entropy.html"] if config["docs"]["update_figures"] else []),
        *[f"docs/tables/{DOCS_PREFIX}{name}.md" for name in docs_table_names()],
        *([f"docs/tables/{DOCS_PREFIX}provenance.md"] if config["docs"]["update_figures"] else []),
    ]


TRAIN_GPUS = config.get("resources", {}).get("train_gpus", 0)


def train_launcher(wildcards):
    """`entropy-rl`, or torchrun with one process per GPU when the suite's own trainer is given
    several (resources.train_gpus > 1); verl starts its own workers from a single `entropy-rl`."""
    if TRAIN_GPUS > 1 and config["train"].get("engine", "entropy-rl") == "entropy-rl":
        return f"torchrun --standalone --nproc_per_node {TRAIN_GPUS} -m entropy_rl.cli"
    return "entropy-rl"
