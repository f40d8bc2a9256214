"""``tiny://<family>``: the demo's model address, resolved here and nowhere else.

A recipe whose ``model.path`` is ``tiny://llava_onevision`` (or ``tiny://qwen2_vl``) runs on a tiny random-weight
model built from transformers' classes (:func:`savi_plugin.models.tiny.build_tiny_model`) into the run folder.
``savi align`` and its eval step call :func:`resolve_model_path` and :func:`offline_eval_root`; any other path
passes through unchanged, so the pipeline itself never tests for this scheme.
"""

from __future__ import annotations

from pathlib import Path

from savi_plugin.data.outputs import write_text

SCHEME = "tiny://"


def is_tiny(path: str | Path) -> bool:
    """Whether ``path`` is a ``tiny://`` address."""
    return str(path).startswith(SCHEME)


def resolve_model_path(path: str | Path, run_dir: str | Path, seed: int = 0) -> str:
    """A loadable model path: ``tiny://<family>`` is built once into ``run_dir/models/tiny``; others unchanged."""
    if not is_tiny(path):
        return str(path)
    from savi_plugin.models.tiny import build_tiny_model

    out = Path(run_dir) / "models" / "tiny"
    if not (out / "config.json").exists():
        build_tiny_model(out, str(path).removeprefix(SCHEME), seed=seed)
    return str(out)


def offline_eval_root(recipe, run_dir: str | Path) -> Path | None:
    """For a ``tiny://`` recipe with no ``eval.data_root``: a small synthetic eval data root in ``run_dir``.

    Returns None for every other recipe (the eval step then uses the recipe's data root or the hub).
    """
    if recipe.eval.data_root is not None or not is_tiny(recipe.model.path):
        return None
    from savi_plugin.eval.fixtures import build_fixture

    root = Path(run_dir) / "eval_data"
    if not (root / ".built").exists():
        for name in {t.removeprefix("savi_").split("_")[0] for t in recipe.eval.tasks}:
            build_fixture(root, name, 2, seed=1)
        write_text(root / ".built", "ok")
    return root
