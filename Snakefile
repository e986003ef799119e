# entropy-rl: the whole study behind one command, `snakemake --cores all`.
# Thin by design: load and validate the config, include one rule file per stage, define `all`.
from snakemake.utils import min_version, validate

min_version("8.0")


# The embedded default, unless profiles are given with --configfile. A profile holds only what
# differs from the profile it names with `extends:` (config/saturating.yaml extends config.yaml);
# the files are resolved here (entropy_rl.config.resolve_profiles), then --config key=value on top.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


from entropy_rl.config import resolve_profiles

try:
    _resolved = resolve_profiles(
        workflow.overwrite_configfiles or ["config/config.yaml"], workflow.config_settings.config
    )
except ValueError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_resolved)


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
