# The tabular simulator: every method on a logits table, seconds per run (CPU).


rule tabular_run:
    input:
        config=f"{RESULTS}/config/tabular.yaml",
    output:
        metrics=f"{TAB_RUN}/metrics.jsonl",
        summary=f"{TAB_RUN}/summary.json",
    log:
        f"{LOGS}/tabular/{{method}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/tabular/{{method}}_seed{{seed}}.tsv"
    params:
        out=lambda wildcards, output: os.path.dirname(output.summary),
        run_name=lambda wildcards: f"{config['profile']}/tabular/{wildcards.method}/seed{wildcards.seed}",
        tracking=TRACKING,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "entropy-rl tabular --config {input.config:q} --method {wildcards.method:q}"
        " --seed {wildcards.seed:q} --out {params.out:q}"
        " --run-name {params.run_name:q} --tracking-dir {params.tracking:q} > {log:q} 2>&1"
