"""Training: the one scoring path (:mod:`~savi_plugin.training.scoring`), collator, phrase ids, the loss objective
and the preference trainers (transformers Trainer + peft)."""
