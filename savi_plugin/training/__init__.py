"""Training: the typed batch (:mod:`~savi_plugin.training.batch`), the one scoring path
(:mod:`~savi_plugin.training.scoring`), the packed row (:mod:`~savi_plugin.training.packing`), response-only
log-probs (:mod:`~savi_plugin.training.token_logprobs`), dataset/collator and the preference trainers (transformers
Trainer + peft). docs/ARCHITECTURE.md follows one pair through them."""
