"""Entry point of rule verify_dataset: the archive's published md5, and its sha256 against the pin
or lock file, before anything is unpacked."""

from pathlib import Path

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.io.download import verify_file  # noqa: E402

source = snakemake.params.source  # noqa: F821
# Not params (see rules/data.smk): a new pin must not rerun every later step.
pins = untracked_setting(snakemake, "dataset", source)  # noqa: F821
archive = snakemake.input.archive  # noqa: F821
digest = verify_file(
    archive,
    md5=pins["md5"],
    sha256=pins["sha256"],
    lock_file=snakemake.params.lock_file,  # noqa: F821
    url=snakemake.params.url or "",  # noqa: F821
)
write_text_atomic(snakemake.output.digest, f"{digest}  {Path(archive).name}\n")  # noqa: F821
