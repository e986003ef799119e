# One RL run per method and seed, from the base model. A killed run resumes from its checkpoint.


TRAIN_GPUS = config.get("resources", {}).get("train_gpus", 0)


def train_launcher(wildcards):
    """`entropy-rl`, or torchrun with one process per GPU when the suite's own trainer is given
    several (resources.train_gpus > 1); verl starts its own workers from a single `entropy-rl`."""
    if TRAIN_GPUS > 1 and config["train"].get("engine", "entropy-rl") == "entropy-rl":
        return f"torchrun --standalone --nproc_per_node {TRAIN_GPUS} -m entropy_rl.cli"
    return "entropy-rl"


rule train_run:
    input:
        config=f"{RESULTS}/config/train.yaml",
        base=f"{MODEL_DIR}/base/base_summary.json",
    output:
        metrics=f"{MODEL_DIR}/{{method}}/seed{{seed}}/metrics.jsonl",
        summary=f"{MODEL_DIR}/{{method}}/seed{{seed}}/summary.json",
        model=f"{MODEL_DIR}/{{method}}/seed{{seed}}/model/config.json",  # sharded or not
    log:
        f"{LOGS}/train/{{method}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{method}}_seed{{seed}}.tsv"
    params:
        out=lambda wildcards, output: os.path.dirname(output.summary),
        base=lambda wildcards, input: base_model_ref(os.path.dirname(input.base)),
        launcher=train_launcher,
        run_name=lambda wildcards: f"{config['profile']}/{wildcards.method}/seed{wildcards.seed}",
        tracking=TRACKING,
    threads: 1
    resources:
        mem_mb=config.get("resources", {}).get("train_mem_mb", 3000),
        runtime=config.get("resources", {}).get("train_runtime_min", 30),
        gpus=TRAIN_GPUS,
    conda:
        CONDA_ENV
    shell:
        "{params.launcher} train --config {input.config} --method {wildcards.method} --seed {wildcards.seed}"
        " --model {params.base} --out {params.out} --resume"
        " --run-name {params.run_name} --tracking-dir {params.tracking} > {log} 2>&1"
