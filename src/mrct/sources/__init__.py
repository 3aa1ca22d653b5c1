"""Data sources: where the raw MR/CT pairs come from (``dataset.source`` in the config).

``local`` (a folder of patient folders), ``synthrad`` (SynthRAD2023 Task 1 archive) and
``demo`` (synthetic pairs made offline). Each lists patient ids cheaply, at DAG-build time.
"""
