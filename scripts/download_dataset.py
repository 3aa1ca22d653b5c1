"""Entry point of checkpoint download_dataset: fetch a SynthRAD archive atomically, resuming."""

from pathlib import Path

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.io.download import download  # noqa: E402

source = snakemake.params.source  # noqa: F821
archive = snakemake.output.archive  # noqa: F821
# Not params (see rules/data.smk): changing them must not delete and re-download the archive.
settings = untracked_setting(snakemake, "dataset", source)  # noqa: F821
if not snakemake.params.url and not Path(archive).exists():  # noqa: F821
    raise ValueError(
        f"dataset.{source}.url is not set and {archive} does not exist: set the URL of the Task 1 "
        f"archive, or place the archive (or a symbolic link to it) at {Path(archive).resolve()}"
    )
download(
    snakemake.params.url or "",  # noqa: F821
    archive,
    md5=settings["md5"],
    sha256=settings["sha256"],
    lock_file=snakemake.params.lock_file,  # noqa: F821
    retries=settings["retries"],
    timeout=settings["timeout_s"],
)
