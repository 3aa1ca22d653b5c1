"""Entry point of rule fid: FID per model and direction (Inception when present, random embedding)."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from mrct.evaluation.fid import fid_table  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.slices.manifest import read_manifest  # noqa: E402
from mrct.training.loop import resolve_device  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
inputs, params = snakemake.input, snakemake.params  # noqa: F821
# results/predictions/{model}/{direction} -> "model/direction"
predictions = {f"{Path(p).parent.name}/{Path(p).name}": Path(p) for p in inputs.predictions}
table = fid_table(
    read_manifest(inputs.manifest),
    predictions,
    Path(params.inception_weights),
    batch_size=params.batch_size,
    device=str(resolve_device(untracked_setting(snakemake, "train", "device"))),  # noqa: F821
)
write_text_atomic(snakemake.output.table, table.to_csv(index=False, float_format="%.6g"))  # noqa: F821
