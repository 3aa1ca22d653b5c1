"""Entry point of rule unpack_dataset: extract one patient's MR, CT and mask from a SynthRAD archive."""

from pathlib import Path

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.sources.synthrad import extract_patient  # noqa: E402

written = extract_patient(
    snakemake.input.archive,  # noqa: F821
    snakemake.params.region,  # noqa: F821
    snakemake.wildcards.patient,  # noqa: F821
    Path(snakemake.output.mr).parent,  # noqa: F821
    challenge=snakemake.params.challenge,  # noqa: F821
)
if "mask" not in written:
    raise ValueError(
        f"{snakemake.input.archive}: patient {snakemake.wildcards.patient!r} has no mask; "  # noqa: F821
        "expected the challenge's evaluation mask beside the MR and the CT (the HU metrics use it)"
    )
