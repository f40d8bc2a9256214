"""In-process multiple-choice accuracy on synthetic MVBench-format questions (the demo's quick check).

Scoring uses the same answer extraction as our lmms-eval tasks (:func:`savi_plugin.eval.answers.extract_choice`),
so the demo's numbers mean what the benchmark numbers mean.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from savi_plugin.eval.answers import extract_choice


def mcq_accuracy(lm, videos: Sequence[np.ndarray], samples: Sequence, *, batch_size: int = 16,
                 max_new_tokens: int = 8, desc: str = "eval") -> dict:
    """Greedy-answer every sample's MCQ prompt and score it.

    Args:
        lm: a loaded backend.
        videos: decoded frames per sample.
        samples: :class:`~savi_plugin.video.synthetic.SyntheticSample` objects (question, options, answer).

    Returns:
        ``{"accuracy": float, "per_task": {task: accuracy}, "unparsed": int, "n": int}``.
    """
    hits: dict[str, list[int]] = defaultdict(list)
    unparsed = 0
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, unit="batch"):
        chunk = samples[start:start + batch_size]
        answers = lm.generate(videos[start:start + batch_size], [s.mcq_prompt() for s in chunk],
                              max_new_tokens=max_new_tokens)
        for sample, answer in zip(chunk, answers):
            choice = extract_choice(answer, sample.options)
            unparsed += choice is None
            hits[sample.task].append(int(choice == sample.answer_index))
    every = [h for task in hits.values() for h in task]
    return {"accuracy": float(np.mean(every)), "per_task": {t: float(np.mean(h)) for t, h in sorted(hits.items())},
            "unparsed": unparsed, "n": len(every)}
