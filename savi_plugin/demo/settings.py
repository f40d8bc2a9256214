"""The demo's own settings: the ``demo.key=value`` arguments of ``savi demo``, each default defined here once.

The recipe ``savi demo`` runs (``tiny_demo``) is an ordinary one: model, generator, LoRA, loss and trainer
arguments, read and checked by :func:`savi_plugin.recipe.load_recipe` like every other. What only the demo does --
the sizes of its three video sets (:mod:`savi_plugin.demo.world`), the supervised warm-up
(:mod:`savi_plugin.demo.warmup`), DPO beside RRPO -- is set here. ``savi demo`` hands the arguments whose key
starts with ``demo.`` to :func:`load_settings` and the rest to the recipe; a value is checked by the same rules
as a recipe's (:mod:`savi_plugin.config.values`): ``override 'demo.warmup_lr=0': demo.warmup_lr: must be > 0``.
A recipe file that holds a ``demo`` section is refused by the recipe loader (``demo: unknown key``).
"""

from __future__ import annotations

from dataclasses import dataclass

from savi_plugin.config.values import Positive, Range, build, checked

#: the first key of a ``savi demo`` argument that sets one of :class:`DemoSettings`
PREFIX = "demo"
#: most synthetic videos per set: 20x the defaults (each is a small mp4 written to the run folder, ~4 kB)
MAX_VIDEOS = 10_000


@dataclass(frozen=True)
class DemoSettings:
    """``demo.*``: the demo's world and its warm-up (``savi demo demo.warmup_steps=60``)."""

    warmup_videos: int = checked(200, Range(1, MAX_VIDEOS), help="videos of the warm-up set (the language prior)")
    align_videos: int = checked(400, Range(1, MAX_VIDEOS),
                                help="self-alignment videos: the rrpo generator's video-QA input")
    heldout_videos: int = checked(400, Range(1, MAX_VIDEOS), help="held-out videos the accuracy is measured on")
    warmup_steps: int = checked(300, Range(1, 100_000), help="supervised warm-up steps before pair generation (the "
                                                             "pairs come from the warmed-up model's errors)")
    warmup_lr: float = checked(2e-3, Positive(), help="warm-up learning rate")
    compare_dpo: bool = checked(True, help="train DPO on the same pairs beside RRPO")


def is_setting(override: str) -> bool:
    """Whether a ``key.path=value`` argument sets a demo setting (its first key is ``demo``)."""
    return override.partition("=")[0].strip().split(".")[0] == PREFIX


def split_overrides(overrides: list[str] | None) -> tuple[list[str], list[str]]:
    """``(the demo's settings, the recipe's overrides)`` from ``savi demo``'s ``key.path=value`` arguments."""
    overrides = list(overrides or [])
    return [o for o in overrides if is_setting(o)], [o for o in overrides if not is_setting(o)]


def load_settings(overrides: list[str] | None = None) -> DemoSettings:
    """The defaults with each ``demo.key=value`` applied, checked.

    Raises:
        ConfigError: ``override 'demo.x=v': demo.x: message`` (an unknown key, a wrong type, a value out of range).
    """
    from savi_plugin.config.origins import KeySources
    from savi_plugin.recipe import apply_overrides

    origins: dict[str, str] = {}
    values = apply_overrides({}, list(overrides or []), origins=origins).get(PREFIX, {})
    return build(DemoSettings, values, PREFIX, KeySources("savi demo", origins))
