# The HTML report, and the figures shown in docs/ (copied from results/, so the teaching site
# shows what the pipeline made).


rule report:
    input:
        config=f"{RESULTS}/config/study.yaml",
        analysis=f"{RESULTS}/analysis/analysis.json",
        theory=f"{RESULTS}/theory/summary.json",
        base=base_files("base_summary.json"),
        figures=figure_files(THEORY_FIGURES + STUDY_FIGURES),
        token_entropy=f"{RESULTS}/token_entropy.html",
    output:
        f"{RESULTS}/report.html",
    log:
        f"{LOGS}/report.log",
    params:
        results=lambda wildcards, input: os.path.dirname(os.path.dirname(input.config)),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        CONDA_ENV
    shell:
        "entropy-rl report --config {input.config:q} --results {params.results:q} --out {output:q} > {log:q} 2>&1"


rule docs_token_entropy:
    input:
        f"{RESULTS}/token_entropy.html",
    output:
        f"docs/figures/{DOCS_PREFIX}token_entropy.html",
    log:
        f"{LOGS}/docs_figure/token_entropy.log",
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    conda:
        CONDA_ENV
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


rule docs_figure:
    input:
        f"{FIGURES}/{{name}}.png",
    output:
        f"docs/figures/{DOCS_PREFIX}{{name}}.png",
    log:
        f"{LOGS}/docs_figure/{{name}}.log",
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    conda:
        CONDA_ENV
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


# The run's tables in docs/tables/, which the chapters include (pymdownx.snippets): the numbers
# the docs show are the run's, never typed in.
rule docs_table:
    input:
        f"{RESULTS}/tables/{{name}}.md",
    output:
        f"docs/tables/{DOCS_PREFIX}{{name}}.md",
    log:
        f"{LOGS}/docs_table/{{name}}.log",
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    conda:
        CONDA_ENV
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


# What made the files above: profile, commit, machine, date and each file's digest
# (docs/tables/<figure_prefix>provenance.md; tests check the digests against the files).
rule docs_stamp:
    input:
        config=f"{RESULTS}/config/study.yaml",
        files=[
            *[f"docs/tables/{DOCS_PREFIX}{name}.md" for name in docs_table_names()],
            *[f"docs/figures/{DOCS_PREFIX}{name}.png" for name in docs_figure_names()],
        ],
    output:
        f"docs/tables/{DOCS_PREFIX}provenance.md",
    log:
        f"{LOGS}/docs_stamp.log",
    params:
        source=" ".join(os.path.relpath(str(f)) for f in workflow.overwrite_configfiles) or "config/config.yaml",
    threads: 1
    resources:
        mem_mb=300,
        runtime=1,
    conda:
        CONDA_ENV
    shell:
        "entropy-rl stamp --config {input.config:q} --source {params.source:q} --out {output:q}"
        " {input.files:q} > {log:q} 2>&1"
