"""Entry point of rule reader_study: the blinded questionnaire and its key."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.reader_study.kit import build_reader_study, settings_from_config

inputs, output, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
build_reader_study(
    manifest_path=inputs.manifest,
    selection=inputs.selection,
    prediction_dirs=list(inputs.predictions),
    settings=settings_from_config(params.settings),
    seed=int(params.seed),
    questionnaire=output.questionnaire,
    key=output.key,
)
