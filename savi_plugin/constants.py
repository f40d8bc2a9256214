"""Constants shared across folders, each defined here once (no imports: the bottom of the import order)."""

#: Frames sampled per video where nothing else says (VideoSAVi's 32; lmms-eval's video models' default): the
#: recipe's ``model.num_frames``, the backends, ``PreferenceConfig``, the collator, the generators and the eval model.
DEFAULT_NUM_FRAMES = 32

#: The precisions a backend loads (``VideoLM.from_pretrained``'s ``dtype``, a recipe's ``model.dtype``), and the
#: short names ``VideoLM.from_pretrained`` also takes.
DTYPES = ("float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

#: KL directions: RRPO regularises with KL(ref || policy); TDPO's sequential KL is KL(policy || ref).
KL_DIRECTIONS = ("ref||policy", "policy||ref")

#: Option labels in order: option ``i`` is ``LETTERS[i]``.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
