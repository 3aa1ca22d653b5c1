"""Entry point of rule download_pretrained: fetch one zoo generator and check it loads strictly."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.models.pretrained import fetch_zoo_weights  # noqa: E402
from mrct.models.registry import published_generator  # noqa: E402

kind, arch = published_generator(snakemake.wildcards.model)  # noqa: F821
fetch_zoo_weights(
    snakemake.params.url,  # noqa: F821
    snakemake.output.weights,  # noqa: F821
    arch,
    lock_file=snakemake.params.lock_file,  # noqa: F821
    retries=3,
    timeout=120,
    kind=kind,
)
