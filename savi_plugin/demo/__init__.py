"""``savi demo``: the whole RRPO loop on a tiny model and synthetic videos, CPU-only and offline.

The demo's own scaffolding lives here, and nowhere below: its settings (:mod:`.settings`, the ``demo.*``
arguments), the synthetic world with its language prior (:mod:`.world`), the supervised warm-up (:mod:`.warmup`), the in-process multiple-choice check (:mod:`.mcq_eval`), the table (:mod:`.report`), the
plot (:mod:`.plots`), the driver (:mod:`.run`) and the repeat over seeds with its mean and spread (:mod:`.seeds`).
The recipe it runs (``tiny_demo``) is an ordinary recipe; the ``tiny://`` model address is the models layer's
(:func:`savi_plugin.models.tiny.resolve_model_path`), so ``savi align tiny_demo data.qa=QA.jsonl`` runs the same
recipe without this package.
"""
