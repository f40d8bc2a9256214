"""The Hugging Face ``datasets`` cache that lmms-eval's built-in tasks load from when the hub is off.

lmms-eval 0.7.3 (``api/task.py`` ``ConfigurableTask.download``) calls ``datasets.load_dataset(dataset_path,
dataset_name, cache_dir=<datasets cache>)``. With ``HF_HUB_OFFLINE=1`` the hub is not asked and ``datasets``
(``load.py`` ``CachedDatasetModuleFactory``, ``packaged_modules/cache``) reloads the newest prepared copy in
``<datasets cache>/<namespace>___<snake_case name>/<config>/<version>/<hash>/``: a ``dataset_info.json`` naming
the config and its splits, and one Arrow stream file per split, ``<snake_case name>-<split>.arrow``. That is what a
user's cache holds after one online run; :func:`write_cached_split` writes the same layout from records (the
fixtures of :mod:`savi_plugin.eval.builtin_fixtures`), and :func:`cached_split_dirs` is the check, before a run,
that a built-in task's data is there.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the version and hash folders a fixture's prepared copy is written under
_VERSION, _HASH = "0.0.0", "savi_fixture"


def datasets_cache_dir(env: dict) -> Path:
    """The folder lmms-eval loads datasets from (``api/task.py`` ``_resolve_hf_datasets_cache_dir``):
    ``LMMS_EVAL_DATASETS_CACHE``, else ``HF_DATASETS_CACHE``, else ``$HF_HOME/datasets``."""
    explicit = (env.get("LMMS_EVAL_DATASETS_CACHE") or "").strip()
    if explicit:
        return Path(os.path.expanduser(os.path.expandvars(explicit)))
    return Path(os.path.expanduser(env.get("HF_DATASETS_CACHE") or os.path.join(hf_home(env), "datasets")))


def hf_home(env: dict) -> str:
    """``$HF_HOME``, or huggingface_hub's default (``$XDG_CACHE_HOME/huggingface``, ``~/.cache/huggingface``)."""
    if env.get("HF_HOME"):
        return os.path.expanduser(env["HF_HOME"])
    xdg = env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.expanduser(os.path.join(xdg, "huggingface"))


def _dataset_dir(cache: Path, repo_id: str) -> Path:
    from datasets.naming import camelcase_to_snakecase

    namespace, name = repo_id.split("/")
    return Path(cache) / f"{namespace}___{camelcase_to_snakecase(name)}"


def cached_split_dirs(cache: Path, repo_id: str, config: str | None) -> list[Path]:
    """The prepared copies of ``repo_id``'s ``config`` (None: ``default``) in the cache (empty: none)."""
    folder = _dataset_dir(cache, repo_id) / (config or "default")
    return sorted(p for p in folder.glob("*/*") if (p / "dataset_info.json").is_file())


def write_cached_split(cache: str | Path, repo_id: str, config: str | None, split: str, records: list[dict]) -> Path:
    """Write ``records`` as the prepared split ``split`` of ``repo_id``'s ``config``; returns the Arrow file.

    The features are those ``datasets`` infers from the records (``Dataset.from_list``), the columns being the
    task's own (the fields its ``utils.py`` reads).
    """
    import datasets
    from datasets.arrow_writer import ArrowWriter
    from datasets.naming import camelcase_to_snakecase

    name = camelcase_to_snakecase(repo_id.split("/")[1])
    folder = _dataset_dir(Path(cache), repo_id) / (config or "default") / _VERSION / _HASH
    folder.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_list(records)
    arrow = folder / f"{name}-{split}.arrow"
    with ArrowWriter(features=table.features, path=str(arrow)) as writer:
        writer.write_table(table.data.table)
        examples, size = writer.finalize()
    info_path = folder / "dataset_info.json"
    splits = datasets.SplitDict(dataset_name=name)
    if info_path.is_file():  # another split of the same config, written before
        splits = datasets.DatasetInfo.from_directory(str(folder)).splits
        splits.pop(split, None)
    splits.add(datasets.SplitInfo(name=split, num_bytes=size, num_examples=examples, dataset_name=name))
    info = datasets.DatasetInfo(features=table.features, config_name=config or "default", dataset_name=name,
                                splits=splits)
    info.write_to_directory(str(folder))
    return arrow
