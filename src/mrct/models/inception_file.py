"""The official FID Inception weight file: where it comes from and what it must hash to.

Kept apart from the network (``mrct.models.inception``) so that the workflow can name the file
while it builds the DAG without importing torch (seconds per Snakemake call).
"""

#: The official weight file (pytorch-fid's release; torch-fidelity ships the same bytes).
INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: sha256 of the official file (95,628,359 bytes); its first 8 digits are the suffix of the name.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

__all__ = ["INCEPTION_FILE", "INCEPTION_SHA256", "INCEPTION_URL"]
