"""Entry point of rule download_inception: the standard FID Inception weights, checked."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.models.inception import fetch_inception_weights  # noqa: E402

fetch_inception_weights(snakemake.output.weights, retries=3, timeout=120)  # noqa: F821
