"""In-process multiple-choice accuracy on the demo's held-out videos.

Scoring uses the same answer extraction as our lmms-eval tasks (:func:`savi_plugin.eval.answers.extract_choice`),
so the demo's numbers mean what the benchmark numbers mean: an answer that names no option is wrong.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from savi_plugin.eval.answers import extract_choice


def mcq_accuracy(lm, videos: Sequence[np.ndarray], samples: Sequence, *, group: Callable[[object], str],
                 batch_size: int = 16, max_new_tokens: int = 8, desc: str = "eval") -> dict:
    """Greedy-answer every sample's MCQ prompt and score it.

    Args:
        lm: a loaded backend.
        videos: decoded frames per sample.
        samples: :class:`~savi_plugin.video.synthetic.SyntheticSample` objects (question, options, answer).
        group: the report group of a sample (accuracy is also given per group).

    Returns:
        ``{"accuracy", "n", "per_group": {group: accuracy}, "n_per_group", "correct": [0/1 per sample],
        "answers": [text per sample], "unparsed": int}``.
    """
    correct, answers, unparsed = [], [], 0
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, unit="batch"):
        chunk = samples[start:start + batch_size]
        replies = lm.generate(videos[start:start + batch_size], [s.mcq_prompt() for s in chunk],
                              max_new_tokens=max_new_tokens)
        for sample, reply in zip(chunk, replies):
            choice = extract_choice(reply, sample.options)
            unparsed += choice is None
            correct.append(int(choice == sample.answer_index))
            answers.append(reply)
    hits: dict[str, list[int]] = defaultdict(list)
    for sample, hit in zip(samples, correct):
        hits[group(sample)].append(hit)
    return {"accuracy": float(np.mean(correct)), "n": len(correct),
            "per_group": {g: float(np.mean(h)) for g, h in hits.items()},
            "n_per_group": {g: len(h) for g, h in hits.items()},
            "correct": correct, "answers": answers, "unparsed": unparsed}
