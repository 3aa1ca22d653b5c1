"""Entry point of rule reader_study_analysis: Tables V and VI, classification and agreement from the answers."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.reader_study.analysis import TABLES, write_analysis  # noqa: E402

output = snakemake.output  # noqa: F821
write_analysis(
    snakemake.input.key,  # noqa: F821
    list(snakemake.input.answers),  # noqa: F821
    snakemake.params.answers_dir,  # noqa: F821
    {name: getattr(output, name) for name in (*TABLES, "note")},
)
