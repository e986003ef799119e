# The paper's theory checked numerically on random tabular policies (seconds, CPU).


rule theory:
    output:
        summary=f"{RESULTS}/theory/summary.json",
        figures=figure_files(THEORY_FIGURES),
    log:
        f"{LOGS}/theory.log",
    benchmark:
        f"{BENCHMARKS}/theory.tsv"
    params:
        seed=config["theory"]["seed"],
        figures=lambda wildcards, output: os.path.dirname(output.figures[0]),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "entropy-rl theory --seed {params.seed:q} --summary {output.summary:q}"
        " --figures {params.figures:q} > {log:q} 2>&1"
