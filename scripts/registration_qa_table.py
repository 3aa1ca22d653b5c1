"""Entry point of rule registration_qa_table."""

from mrct.io.joblog import setup_logging
from mrct.preprocess.registration_qa import (
    collect_registration_qa,
    write_registration_qa,
)

log = setup_logging(snakemake.log[0])
table = collect_registration_qa(snakemake.input.records, snakemake.params.min_dice, snakemake.params.min_nmi)
log.info("registration QA: %d patients, %d flagged", len(table), int(table["flagged"].sum()))
write_registration_qa(table, snakemake.output.table)
