"""Training: collator, response-only log-probs, phrase ids, and the preference trainers (transformers Trainer + peft)."""
