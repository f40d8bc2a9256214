"""Benchmarks by name: the extension point for adding one (entry-point group ``savi_plugin.benchmarks``).

A benchmark is one :class:`Benchmark` object: how its records are stored and read (:class:`BenchmarkSpec`:
fields, video paths, options, answer), its evaluation protocols (:class:`~savi_plugin.eval.protocols.Protocol`
by name) and the folder of its lmms-eval task YAMLs. A distribution adds one with one folder (the YAMLs, next to
the module that builds the object) and one entry in its packaging metadata::

    [options.entry_points]
    savi_plugin.benchmarks =
        mybench = my_pkg.mybench:BENCHMARK

Nothing else changes: lmms-eval indexes the benchmark's task folder with ours
(:mod:`savi_plugin.eval.registration`), :class:`savi_plugin.eval.task.SaviVideoTask` loads its records from the hub
or ``$SAVI_DATA_ROOT/<name>/`` and the generic doc functions of :mod:`savi_plugin.eval.task` prompt, grade and count
its documents by the doc's ``savi_benchmark``. The built-in benchmarks are registered the same way (setup.cfg).
``eval_tasks/README.md`` ("Adding a benchmark") walks through it.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from savi_plugin.eval import data, vidhalluc, videohallucer
from savi_plugin.eval.protocols import PROTOCOLS, Protocol
from savi_plugin.registry import BENCHMARKS as GROUP
from savi_plugin.registry import conflicts, entries, origin


@dataclass(frozen=True)
class Benchmark:
    """One benchmark.

    Attributes:
        spec: how its records are stored and read (its ``name`` is the benchmark's name and its folder under
            ``$SAVI_DATA_ROOT``).
        protocols: its evaluation protocols by name; ``savi`` is the default a task without
            ``metadata.protocol`` uses.
        tasks: the folder of its lmms-eval task YAMLs (each with ``class: !function
            savi_plugin.eval.task.SaviVideoTask`` and ``metadata.benchmark: <name>``); None for the benchmarks whose
            YAMLs live in savi-plugin's own ``eval_tasks/``.
        paper: where the benchmark comes from (for tables and the eval card).
    """

    spec: data.BenchmarkSpec
    protocols: Mapping[str, Protocol] = field(default_factory=dict)
    tasks: str | Path | None = None
    paper: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    def protocol(self, name: str = "savi") -> Protocol:
        """The protocol ``name``; a ValueError lists the known ones."""
        if name not in self.protocols:
            raise ValueError(f"unknown protocol {name!r} for {self.name!r}; known: {', '.join(self.protocols) or 'none'}")
        return self.protocols[name]


def _builtin(name: str, paper: str) -> Benchmark:
    return Benchmark(data.BENCHMARKS[name], PROTOCOLS[name], paper=paper)


MVBENCH = _builtin("mvbench", "Li et al., MVBench, CVPR 2024")
EGOSCHEMA = _builtin("egoschema", "Mangalam et al., EgoSchema, NeurIPS 2023")
PERCEPTIONTEST = _builtin("perceptiontest", "Pătrăucean et al., Perception Test, NeurIPS 2023")
VIDEOHALLUCER = Benchmark(videohallucer.SPEC, videohallucer.PROTOCOLS,
                          paper="Wang et al., VideoHallucer, arXiv 2406.16338")
VIDHALLUC = Benchmark(vidhalluc.SPEC, vidhalluc.PROTOCOLS, paper="Li et al., VidHalluc, CVPR 2025")


class BenchmarkError(LookupError):
    """An unknown benchmark name, or an entry point that does not give a :class:`Benchmark` (one line)."""


def _check(name: str, entry) -> Benchmark:
    """The benchmark an entry point gives; :class:`BenchmarkError` (one line naming the entry) when it gives none."""
    try:
        obj = entry.load()
    except Exception as exc:  # noqa: BLE001 - a third party's import error: name the entry point
        raise BenchmarkError(f"{GROUP} entry {name} = {entry.value}: cannot load ({type(exc).__name__}: {exc})") \
            from None
    if not isinstance(obj, Benchmark):
        raise BenchmarkError(f"{GROUP} entry {name} = {entry.value}: expected a savi_plugin.eval.benchmarks."
                             f"Benchmark, got {type(obj).__name__}")
    if obj.name != name:
        raise BenchmarkError(f"{GROUP} entry {name} = {entry.value}: the benchmark is named {obj.name!r}; the "
                             f"entry's name and spec.name must be the same")
    if obj.tasks is not None and not Path(obj.tasks).is_dir():
        raise BenchmarkError(f"{GROUP} entry {name} = {entry.value}: tasks folder {obj.tasks} does not exist")
    return obj


#: the broken entries a process has said, inherited by the processes it starts (lmms-eval under ``savi eval``)
SAID_ENV = "SAVI_BENCHMARKS_LEFT_OUT"


@functools.cache
def _loaded() -> tuple[dict[str, Benchmark], dict[str, str]]:
    """The usable benchmarks by name, and the broken entry points' one-line reasons by name (loaded once per
    process). A broken entry is left out and said on stderr once (not again by the lmms-eval process ``savi``
    starts: :data:`SAID_ENV`), so it costs its own benchmark only: the others (the built-in ones among them)
    still load."""
    found, broken = {}, {}
    said = set(filter(None, os.environ.get(SAID_ENV, "").split(",")))
    clashes = conflicts(GROUP)
    for name, entry in sorted(entries(GROUP).items()):
        try:
            if name in clashes:  # one name, one object, as for every other group: never one of them picked unsaid
                raise BenchmarkError(f"{GROUP} entry {name} is registered by several packages with different objects "
                                     f"({'; '.join(origin(ep) for ep in clashes[name])}): uninstall one of them")
            found[name] = _check(name, entry)
        except BenchmarkError as exc:
            broken[name] = str(exc)
            if name not in said:
                print(f"savi-plugin: benchmark left out: {exc}", file=sys.stderr)
    if broken:
        os.environ[SAID_ENV] = ",".join(sorted(said | set(broken)))
    return found, broken


def registered() -> dict[str, Benchmark]:
    """Every usable benchmark of the ``savi_plugin.benchmarks`` entry points, by name (a broken entry is left out:
    :func:`broken`)."""
    return _loaded()[0]


def broken() -> dict[str, str]:
    """The ``savi_plugin.benchmarks`` entries that give no usable benchmark, each with its one-line reason."""
    return _loaded()[1]


def cache_clear() -> None:
    """Forget the loaded entry points (tests that install a distribution)."""
    _loaded.cache_clear()


def get(name: str) -> Benchmark:
    """The benchmark called ``name``; :class:`BenchmarkError` gives a broken entry's reason, or lists the registered
    ones for an unknown name."""
    found, bad = _loaded()
    if name in bad:
        raise BenchmarkError(bad[name])
    if name not in found:
        raise BenchmarkError(f"unknown benchmark {name!r}; registered: {', '.join(found) or 'none'} "
                             f"(a benchmark is added through the {GROUP} entry-point group)")
    return found[name]


def task_folders() -> list[str]:
    """The task-YAML folders of the registered benchmarks that bring their own (lmms-eval indexes them with ours)."""
    return sorted({str(Path(b.tasks).resolve()) for b in registered().values() if b.tasks is not None})
