# entropy-rl: the whole study behind one command, `snakemake --cores all`.
# Thin by design: load and validate the config, include one rule file per stage, define `all`.
from snakemake.utils import min_version, validate

min_version("8.0")


# The embedded default, unless a profile is given with --configfile (whose config then stands alone:
# Snakemake would otherwise merge the two, and the default's methods would leak into a paper profile).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/tabular.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
