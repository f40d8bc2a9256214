"""Before a job loads the model: can lmms-eval's built-in tasks it names run here? One line when not.

A built-in task whose data is not on the machine fails inside lmms-eval with chained tracebacks (``snapshot_download``
refused offline, then ``datasets``' "Couldn't reach the Hugging Face Hub"), after the model was loaded, and lmms-eval
exits 0. :func:`builtin_task_env` looks first, for every built-in task of the job
(:mod:`savi_plugin.eval.builtin_tasks`), at what lmms-eval 0.7.3 will need:

* offline (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` on): the videos folder ``$HF_HOME/<cache_dir>`` (else
  lmms-eval downloads the video archives) and a prepared copy of each config in the datasets cache
  (:mod:`savi_plugin.eval.hf_cache`);
* online, where that data is not here yet: a Hugging Face token (the YAMLs say ``token: True``, and
  ``huggingface_hub`` refuses ``token=True`` without one);
* TempCompass: an OpenAI key for the judge its rules fall back on (``OPENAI_API_KEY``; ``OPENAI_API_URL`` for a
  compatible server); without one each unmatched answer costs 11 failed requests and scores 0 silently.

It refuses with :class:`BuiltinDataError` naming the task, what is missing and how to get it, and otherwise
returns the job's environment with ``HF_HOME`` set (TempCompass's and NExT-QA's ``utils.py`` read
``os.environ["HF_HOME"]`` at import and fail without it).
"""

from __future__ import annotations

import os
from pathlib import Path

from savi_plugin.errors import ConfigurationError
from savi_plugin.eval.builtin_tasks import builtin_of, leaves_of
from savi_plugin.eval.hf_cache import cached_split_dirs, datasets_cache_dir, hf_home

_TRUE = ("1", "on", "yes", "true")


class BuiltinDataError(ConfigurationError):
    """A built-in lmms-eval task of the job cannot run here (one line: task, what is missing, how to get it)."""


def _offline_flag(env: dict) -> str | None:
    return next((var for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
                 if str(env.get(var, "")).strip().lower() in _TRUE), None)


def _has_hub_token(env: dict, home: str) -> bool:
    """A token huggingface_hub would send (``HF_TOKEN``, else the file ``HF_TOKEN_PATH`` or ``$HF_HOME/token``)."""
    if env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN"):
        return True
    return Path(os.path.expanduser(env.get("HF_TOKEN_PATH") or os.path.join(home, "token"))).is_file()


def builtin_problems(tasks: list[str], env: dict) -> list[str]:
    """What keeps each built-in task of ``tasks`` from running with ``env`` (one message per task; empty: none)."""
    problems = []
    offline = _offline_flag(env)
    home = hf_home(env)
    cache = datasets_cache_dir(env)
    for task in tasks:
        builtin = builtin_of(task)
        if builtin is None:
            continue
        how = f"run it once online with HF_HOME={home}, or copy a Hugging Face home that has it there"
        videos = Path(home) / builtin.cache_dir
        configs = [builtin.configs[leaf] for leaf in leaves_of(task)]
        uncached = [c or "default" for c in configs if not cached_split_dirs(cache, builtin.dataset_path, c)]
        if offline and not videos.is_dir():
            problems.append(f"{task}: no videos folder {videos} and {offline}=1 forbids lmms-eval's download of "
                            f"{builtin.dataset_path}; {how}")
        elif offline and uncached:
            problems.append(f"{task}: {builtin.dataset_path} (config {', '.join(uncached[:3])}"
                            f"{' ...' if len(uncached) > 3 else ''}) is not in the datasets cache {cache} and "
                            f"{offline}=1 forbids its download; {how}")
        elif not offline and (not videos.is_dir() or uncached) and not _has_hub_token(env, home):
            problems.append(f"{task}: lmms-eval downloads {builtin.dataset_path} with token=True (its YAML) and no "
                            f"Hugging Face token is set; log in (hf auth login) or set HF_TOKEN, or use a "
                            f"Hugging Face home that has the data (HF_HOME)")
        elif builtin.judge and not env.get("OPENAI_API_KEY"):
            problems.append(f"{task}: answers its rules cannot match are graded by an OpenAI judge "
                            f"(gpt-3.5-turbo-1106 at OPENAI_API_URL, default api.openai.com) and OPENAI_API_KEY is "
                            f"not set; set it (and OPENAI_API_URL for a compatible server), or leave the task out")
    return problems


def builtin_task_env(tasks: list[str], env: dict) -> dict:
    """``env`` with ``HF_HOME`` set, after checking that every built-in task of ``tasks`` can run.

    Raises:
        BuiltinDataError: the first task that cannot, and how many others cannot either.
    """
    if not any(builtin_of(t) for t in tasks):
        return env
    problems = builtin_problems(tasks, env)
    if problems:
        more = f" (and {len(problems) - 1} more built-in task(s) likewise)" if len(problems) > 1 else ""
        raise BuiltinDataError(problems[0] + more)
    return {**env, "HF_HOME": hf_home(env)}
