"""Entry point of rule make_demo_patient."""

from mrct.io.joblog import setup_logging
from mrct.sources.demo import make_demo_patient

log = setup_logging(snakemake.log[0])
log.info("making synthetic demo patient %s", snakemake.wildcards.patient)
make_demo_patient(
    snakemake.params.seed,
    snakemake.wildcards.patient,
    dict(snakemake.params.settings),
    dict(snakemake.output),
    mixed_up=snakemake.params.mixed_up,
)
