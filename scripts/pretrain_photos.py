"""Entry point of rule pretrain_photos: the offline, non-zoo pretrained generator."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

import torch  # noqa: E402

from mrct.models.pretrain_photos import PretrainSettings, pretrain_to_file  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
params = snakemake.params  # noqa: F821
settings = PretrainSettings(ngf=params.ngf, n_blocks=params.n_blocks, seed=params.seed, **params.settings)
pretrain_to_file(settings, snakemake.output.weights)  # noqa: F821
