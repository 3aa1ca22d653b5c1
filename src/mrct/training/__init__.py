"""Fine-tuning: settings, data, image pool, losses and step, checkpoint, epoch loop.

Two families share the loop: CycleGAN (``build``, ``step``) and paired pix2pix
(``pix2pix_build``, ``pix2pix_step``); the model registry says which a model belongs to.

The package itself imports nothing: ``rules/common.smk`` reads ``mrct.training.settings`` while
Snakemake builds the DAG, and importing the loop here would load torch on every Snakemake call.
Import from the submodules (``mrct.training.loop``, ``mrct.training.settings``).
"""
