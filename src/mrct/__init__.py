"""mrct: brain MR <-> CT synthesis by transfer learning from pretrained CycleGAN generators.

The package holds the logic of every workflow step; the Snakemake rules only wire files
to it through the thin entry points in ``scripts/``.
"""

__version__ = "0.1.0"
