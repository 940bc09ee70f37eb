"""``bnblint verify``: load a bitsandbytes call as written and as fixed, and compare for real.

``sites`` builds each load's arguments statically (from the analysis model, as written and as
``--fix --unsafe-fixes`` rewrites it), ``standin`` chooses the model (``--model``, a local copy,
or a tiny random model of the same family), ``worker`` is the child process that loads one
variant, ``report`` prints the comparison and ``command`` ties them together.

Importing this package imports none of torch, transformers, bitsandbytes or libcst: the worker
is started as ``python -m bnblint.verify.worker`` and pays for those imports itself.
"""

MARK = "__bnblint__"  # a JSON object with this key is a torch dtype or a config, not a dict
