"""Entry point of rule verify_dataset: check the archive's sha256 against the pin or lock file."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.io.download import verify_file  # noqa: E402

digest = verify_file(
    snakemake.input.archive,  # noqa: F821
    # Not a param (see rules/data.smk): a new pin must not rerun every later step.
    sha256=untracked_setting(snakemake, "dataset", "synthrad2023", "sha256"),  # noqa: F821
    lock_file=snakemake.params.lock_file,  # noqa: F821
)
write_text_atomic(snakemake.output.digest, f"{digest}  Task1.zip\n")  # noqa: F821
