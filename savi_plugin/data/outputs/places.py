"""Inputs vs outputs: an output is never an input (:func:`check_distinct`, :func:`check_apart`,
:func:`check_not_any`) and never lies in a training checkpoint (:func:`check_not_in_checkpoint`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Mapping

from savi_plugin.errors import ConfigurationError
from savi_plugin.data.outputs.common import MARK_NAME, OutputInCheckpointError, OutputIsInputError
from savi_plugin.data.outputs.kinds import _identity
from savi_plugin.data.outputs.names import another


def checkpoint_holding(output: str | Path) -> tuple[Path, Path] | None:
    """``(checkpoint, run folder)`` when ``output`` is, or lies inside, a training checkpoint, else None.

    A checkpoint is a folder holding ``savi train``'s record
    (:data:`~savi_plugin.data.identity.CHECKPOINT_FILE`, ``savi_checkpoint.json``), or a ``checkpoint-N``
    folder of a folder savi marked (a checkpoint the Trainer is still writing has no record yet). Its run's resume
    checks every file it holds (:func:`savi_plugin.training.checkpoints.check_contents`): a file added there -- a
    plot, a site, a report -- would stop the run from being continued. Compared by real path, so a link to the
    checkpoint (or to a folder inside it) is found too."""
    from savi_plugin.data.identity import CHECKPOINT_FILE

    real = _real(output)
    for folder in (real, *real.parents):
        if not folder.name:
            continue
        record = folder / CHECKPOINT_FILE
        named = folder.name.startswith("checkpoint-") and folder.name[len("checkpoint-"):].isdigit()
        if os.path.isfile(record) or (named and os.path.lexists(folder.parent / MARK_NAME)):
            return folder, folder.parent
    return None


def check_not_in_checkpoint(output: str | Path, output_name: str = "output") -> None:
    """Refuse an output that is, or lies inside, a training checkpoint (:func:`checkpoint_holding`).

    Raises:
        OutputInCheckpointError: naming the checkpoint and its run.
    """
    from savi_plugin.data.paths import from_here

    found = checkpoint_holding(output)
    if found is not None:
        checkpoint, run = found
        raise OutputInCheckpointError(
            f"{output}: {output_name} would add files to {checkpoint.name}, a checkpoint of the savi train run in "
            f"{from_here(run)}, which its resume checks file by file (the run could not be continued): choose "
            f"{another(output_name)} outside {from_here(checkpoint)}")


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _case_insensitive(folder: Path) -> bool:
    """Whether names in ``folder`` (an existing folder) are compared without case by its file system."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    name = probe.name
    if not name or name.swapcase() == name:
        return False
    try:
        return os.path.samefile(probe, probe.with_name(name.swapcase()))
    except OSError:
        return False


def _same(a: Path, b: Path) -> bool:
    """The same file: equal real paths, the same inode (hard links), or equal up to case on a folding file system."""
    if a == b:
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
        if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
            return True
    except OSError:
        pass
    return str(a).lower() == str(b).lower() and _case_insensitive(a.parent)


def _inside(child: Path, folder: Path) -> bool:
    """``child`` lies under ``folder`` (both real paths), up to case on a folding file system."""
    if folder in child.parents:
        return True
    if str(folder).lower() in (str(p).lower() for p in child.parents):
        return _case_insensitive(folder)
    return False


def _inode_chain(path: Path) -> list[tuple[int, int]]:
    """``(st_dev, st_ino)`` of ``path`` and of each of its ancestors that exists, nearest first.

    One folder seen under two paths -- a bind mount, a symlinked folder, a hard-linked file -- has one device and
    inode, so comparing these finds an output inside an input whatever path named either of them."""
    chain = []
    for p in (path, *path.parents):
        with contextlib.suppress(OSError):
            st = os.stat(p)
            chain.append((st.st_dev, st.st_ino))
    return chain


def _ancestor_inodes(path: Path) -> list[tuple[int, int]]:
    """:func:`_inode_chain` of the folders that hold ``path`` (``path`` itself left out when it exists)."""
    chain = _inode_chain(path)
    return chain[1:] if path.exists() else chain


def check_distinct(output: str | Path, inputs: Mapping[str, str | Path | None], *, output_name: str = "output",
                   folder: bool = False) -> None:
    """Refuse an ``output`` that is, lies inside, or (``folder=True``) holds one of ``inputs``.

    Args:
        output: the path the job writes.
        inputs: ``{"--input": path, ...}``: the job's inputs by the name the user knows them (None: not given;
            a value naming nothing on disk, e.g. a hub id, is compared by its path only).
        output_name: how the user named the output (``--output``, ``--output-dir``).
        folder: the output is a folder the job writes files into.

    Raises:
        OutputIsInputError: naming both.
    """
    out = _real(output)
    for name, value in inputs.items():
        if value is None or str(value) == "":
            continue
        src = _real(value)
        if _same(out, src):
            raise OutputIsInputError(f"{output}: {output_name} is the same path as {name} ({value}); the job would "
                                     f"write into its own input: choose {another(output_name)}")
        if _inside(out, src):
            raise OutputIsInputError(f"{output}: {output_name} lies inside {name} ({value}); the job would write "
                                     f"into its input: choose {another(output_name)}")
        with contextlib.suppress(OSError):
            st = os.stat(src)
            if (st.st_dev, st.st_ino) in _ancestor_inodes(out):
                raise OutputIsInputError(f"{output}: {output_name} lies inside {name} ({value}), the same folder "
                                         f"under another path (a bind mount or a link: one device and inode); "
                                         f"the job would write into its input: choose {another(output_name)}")
        if folder and (_inside(src, out) or (_identity(out) is not None and _identity(out) in _ancestor_inodes(src))):
            raise OutputIsInputError(f"{output}: {output_name} contains {name} ({value}); the job would write into "
                                     f"its input's folder: choose {another(output_name)}")


def check_apart(outputs: Mapping[str, str | Path | None]) -> None:
    """Refuse two outputs of one command given as one place, however spelt (``savi bench --json wd --work-dir
    wd``): each would be claimed, locked and written as a place of its own. (A file output inside a folder output
    of the same command, ``--json wd/report.json``, is the user's choice.)

    Args:
        outputs: ``{"--json": path, "--work-dir": path, ...}`` by the names the user gave them (None: not given).

    Raises:
        ConfigurationError: naming both, before anything is claimed.
    """
    given = [(name, value, _real(value)) for name, value in outputs.items() if value is not None and str(value) != ""]
    for i, (name, value, real) in enumerate(given):
        for other, other_value, other_real in given[i + 1:]:
            if _same(real, other_real):
                raise ConfigurationError(f"{value}: {name} is the same place as {other} ({other_value}); one "
                                         f"command's outputs must be apart: give {name} a place of its own")


def check_not_any(outputs: Mapping[str, str | Path], files: Iterable[str | Path], *, what: str,
                  folder: bool = False) -> None:
    """Refuse an output that is (or lies inside) one of many ``files`` (e.g. the videos a manifest names), or,
    for a folder output (``folder=True``), holds one of them.

    Args:
        outputs: ``{how the user names it: path}`` of every file (or folder) the job writes.
        files: the inputs; each is resolved once, so 10^5 videos cost one ``realpath`` and one ``stat`` each (and
            one ``stat`` per distinct folder holding them, for ``folder``).
        what: how the message names an input (``"a video the input names"``).
        folder: the outputs are folders the job writes into: one around an input (the videos' own folder, its
            parent, a link to either) is refused too.

    Compared by real path and by inode, so a hard link or symlink to a video (or to its folder) is caught too.
    """
    by_path: dict[Path, str] = {}
    by_inode: dict[tuple[int, int], str] = {}
    holders: dict[Path, str] = {}  # each folder that holds an input (real path) -> that input
    for value in files:
        src = _real(value)
        by_path.setdefault(src, str(value))
        try:
            st = os.stat(src)
            by_inode.setdefault((st.st_dev, st.st_ino), str(value))
        except OSError:
            pass
        if folder:
            holders.setdefault(src.parent, str(value))
    around: dict[Path, str] = {}
    around_inode: dict[tuple[int, int], str] = {}
    for parent, value in holders.items():
        for p in (parent, *parent.parents):
            around.setdefault(p, value)
        for key in _inode_chain(parent):
            around_inode.setdefault(key, value)
    for output_name, output in outputs.items():
        out = _real(output)
        own = _identity(out)  # None when nothing is there, or its name is too long to look up
        hit = by_path.get(out) or by_inode.get(own or (-1, -1))
        if hit is not None:
            raise OutputIsInputError(f"{output}: {output_name} is {what} ({hit}), or a link to it; the job would "
                                     f"write into its own input: choose {another(output_name)}")
        hit = next((by_path[p] for p in out.parents if p in by_path), None)
        hit = hit or next((by_inode[k] for k in _inode_chain(out)[own is not None:] if k in by_inode), None)
        if hit is not None:
            raise OutputIsInputError(f"{output}: {output_name} lies inside {what} ({hit}); the job would write "
                                     f"into its own input: choose {another(output_name)}")
        if folder:
            hit = around.get(out) or around_inode.get(own or (-1, -1))
            if hit is not None:
                raise OutputIsInputError(f"{output}: {output_name} holds {what} ({hit}); the job would write into "
                                         f"its input's folder: choose {another(output_name)}")
