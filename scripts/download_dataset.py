"""Entry point of checkpoint download_dataset: fetch the SynthRAD2023 archive atomically."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.io.download import download  # noqa: E402

# Not params (see rules/data.smk): changing them must not delete and re-download the archive.
settings = untracked_setting(snakemake, "dataset", "synthrad2023")  # noqa: F821
download(
    snakemake.params.url,  # noqa: F821
    snakemake.output.archive,  # noqa: F821
    sha256=settings["sha256"],
    lock_file=snakemake.params.lock_file,  # noqa: F821
    retries=settings["retries"],
    timeout=settings["timeout_s"],
)
