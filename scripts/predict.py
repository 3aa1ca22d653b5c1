"""Entry point of rule predict: translate the test split in both directions."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from mrct.inference.predict import predict_test_split  # noqa: E402
from mrct.slices.manifest import read_manifest  # noqa: E402
from mrct.io.device import resolve_device  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
predict_test_split(
    Path(snakemake.input.g_mr2ct).parent,  # noqa: F821
    read_manifest(snakemake.input.manifest),  # noqa: F821
    {"mr2ct": snakemake.output.mr2ct, "ct2mr": snakemake.output.ct2mr},  # noqa: F821
    batch_size=snakemake.params.batch_size,  # noqa: F821
    device=str(resolve_device(untracked_setting(snakemake, "train", "device"))),  # noqa: F821
)
