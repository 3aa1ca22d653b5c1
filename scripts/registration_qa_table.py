"""Entry point of rule registration_qa_table."""

from mrct.io.joblog import setup_logging
from mrct.preprocess.registration_qa import (
    collect_registration_qa,
    require_enough_patients,
    write_registration_qa,
)

log = setup_logging(snakemake.log[0])
table = collect_registration_qa(snakemake.input.records, snakemake.params.bounds, snakemake.params.keep_flagged)
log.info("registration QA: %d patients, %d flagged", len(table), int(table["flagged"].sum()))
require_enough_patients(table, snakemake.params.keep_flagged)
write_registration_qa(table, snakemake.output.table)
