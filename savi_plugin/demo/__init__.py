"""``savi demo``: the whole RRPO loop on a tiny model and synthetic videos, CPU-only and offline.

The demo's own scaffolding lives here: the synthetic world with its language prior (:mod:`.world`), the supervised
warm-up (:mod:`.warmup`), the in-process multiple-choice check (:mod:`.mcq_eval`), the table (:mod:`.report`), the
plot (:mod:`.plots`) and the driver (:mod:`.run`). The ``tiny://`` model address is the models layer's
(:func:`savi_plugin.models.tiny.resolve_model_path`), so ``savi align`` runs a tiny recipe without this package.
"""
