"""CycleGAN fine-tuning: settings, data, image pool, losses and step, checkpoint, epoch loop.

The package itself imports nothing: ``rules/common.smk`` reads ``mrct.training.settings`` while
Snakemake builds the DAG, and importing the loop here would load torch on every Snakemake call.
Import from the submodules (``mrct.training.loop``, ``mrct.training.settings``).
"""
