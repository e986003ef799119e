# Law fits, method tables, science-acceptance checks and the study figures.


rule analyze:
    input:
        config=f"{RESULTS}/config/study.yaml",
        lm=lm_files("summary.json"),
        evaluations=lm_files("eval/summary.json"),
        base=base_files("eval/summary.json"),  # the headroom and boundary checks
        theory=f"{RESULTS}/theory/summary.json",  # tables/theory.md
        tabular=[f"{TAB_RUN.format(method=m, seed=s)}/summary.json" for m, s in TABULAR_RUNS],
    output:
        analysis=f"{RESULTS}/analysis/analysis.json",
        tables=[f"{RESULTS}/tables/{name}.md" for name in DOCS_TABLES],
        figures=figure_files(STUDY_FIGURES),
    log:
        f"{LOGS}/analyze.log",
    benchmark:
        f"{BENCHMARKS}/analyze.tsv"
    params:
        results=lambda wildcards, input: os.path.dirname(os.path.dirname(input.config)),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "entropy-rl analyze --config {input.config:q} --results {params.results:q} > {log:q} 2>&1"
