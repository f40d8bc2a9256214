"""Paths stored in files, and a record's video path resolved against a data root that it may not escape.

**The one rule for a path stored in a file** (preference pairs, generation manifests, align manifests, run
reports): it is relative to the folder of the file that holds it, or absolute. The file that holds it is the
file itself, not a symlink naming it (:func:`file_folder`): ``proj/pairs.jsonl -> /data/ds/pairs.jsonl`` reads
``videos/a.mp4`` as ``/data/ds/videos/a.mp4``, the video its writer stored beside it -- as a recipe reached
through a link reads its paths from the recipe's own folder. :func:`path_for_file` writes
a path that way and :func:`path_from_file` reads it back; a path given on the command line is relative to
the working folder, so a path is made absolute before it is stored. Reading the same file from another
working folder therefore names the same files. It is stored relative when

* it lies under the holder's folder (``videos/a.mp4`` in ``data/pairs.jsonl`` naming ``data/videos/a.mp4``), or
* the job declared a **run folder** (:func:`run_folder`: ``savi demo``'s ``--out``, ``savi align``'s and
  ``savi ablate``'s) and both the path and the holder lie inside it (``../videos/a.mp4`` in
  ``RUN/data/pairs.jsonl`` naming ``RUN/videos/a.mp4``; ``..`` never climbs above the run folder),

so a folder -- or a whole run folder -- moved as a whole keeps working; anything else (the user's own videos,
models and data outside the run folder) is stored absolute, so it is found wherever the file goes. A data
root (below) is the one exception a user asks for: then a record's relative path starts from the data root
instead, and one that leaves it (``..``) is refused like any other.

A job's configuration names its inputs by path too; :func:`configuration_for_file` stores the paths at given keys
of it by this rule for one file, :func:`configuration_from_file` reads them back absolute, and
:func:`held_configuration` is how the job holds them (absolute) -- one conversion for a training run's records
(:mod:`savi_plugin.training.stored_config`) and a generation run's mark, progress file and report
(:mod:`savi_plugin.generators.runner`). Whether two runs are one is decided by content, not by these spellings.

Preference files, generation manifests and benchmark annotations name their videos by path. Such files
are often downloaded or produced by someone else, so a record must not be able to make a job read an
arbitrary file of the machine (``"../../home/me/.ssh/id_rsa"``, ``"/etc/shadow"``, or a symlink in an
unpacked archive that points out of it). When the user sets a **data root**, every video path a record
names must lie inside it:

* a relative path is joined to the root; an absolute path is kept as written;
* the result, with ``..`` collapsed and every symlink followed (``os.path.realpath``), must be the root or
  lie under the root's own real path -- otherwise :class:`PathEscapeError` names ``file:line:field``.

A symlinked data root itself is fine (its real path is the reference); symlinks *inside* the root must
point inside it. Without a data root (``confine=False``) relative paths are joined to the given base
folder and nothing is refused: the user has not drawn a boundary, and absolute paths are normal then.
Existence is not checked here (callers count a missing video in their own way).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from savi_plugin.data.record import DataError
from savi_plugin.untrusted import shown


class PathEscapeError(DataError):
    """A record's path resolves outside the data root (``..``, an absolute path, or a symlink pointing out)."""

    #: the reason a skipping reader counts it under
    reason = "outside_data_root"


def absolute_path(path: str | os.PathLike) -> str:
    """``path`` made absolute the way the file system reads it: a ``..`` is taken through the folder before it as
    it is on disk (``data/../videos`` with ``data -> ../demo/data`` is ``demo/videos``, not ``./videos``), since a
    ``..`` after a symlinked folder climbs from the folder the link names; ``.`` and doubled separators are
    dropped; the names after the last ``..`` are kept as named (a symlinked file or folder there is not followed:
    the path names what the user named). The one way savi makes a path absolute before it compares, keys or
    stores it -- never ``os.path.normpath``/``os.path.abspath``, which collapse ``..`` as text."""
    text = os.path.expanduser(os.fspath(path))
    if not os.path.isabs(text):
        text = os.path.join(os.getcwd(), text)
    parts = text.split(os.sep)
    if ".." not in parts:
        return os.path.normpath(text)
    last = len(parts) - 1 - parts[::-1].index("..")
    head = os.path.realpath(os.sep.join(parts[:last + 1]) or os.sep)
    return os.path.normpath(os.path.join(head, *[p for p in parts[last + 1:] if p]))


def is_within(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` -- ``..`` collapsed and symlinks followed -- is ``root`` or lies under it.

    Args:
        path: the path to check (need not exist; the existing part of it is resolved).
        root: the folder that must contain it (its real path is used, so a symlinked root works).
    """
    real_root = os.path.realpath(root)
    real_path = os.path.realpath(path)
    try:
        return os.path.commonpath([real_root, real_path]) == real_root
    except ValueError:  # different drives (Windows): certainly not inside
        return False


#: a URL's start (``https://``, ``s3://``): a scheme of two or more letters, so ``C:/`` stays a path
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def stored_path_problem(stored: str) -> str | None:
    """What makes a path stored in a file unreadable the same way by everyone, or None: white space at either end
    (``"v/a.mp4 "``: invisible in every listing and message, so the file looks present when it is not); one
    starting with ``~``
    (a home folder differs between users, machines and ranks, and savi never writes one), which is not expanded
    and refused by every reader of a record's video (:func:`resolve_video_path`,
    :func:`~savi_plugin.data.record.validate_record`); a URL (``https://...``): savi reads local files only."""
    if _URL.match(stored):
        return (f"{shown(stored)} is a URL: savi reads local files only; download the video and name the file "
                f"(relative to the file's folder, or absolute)")
    if stored != stored.strip():
        return (f"path {stored!r} {'starts' if stored[:1].isspace() else 'ends'} with white space, which no "
                f"listing or message shows: remove it (and rename the file, if its name really has it)")
    if stored.startswith("~"):
        return (f"path {stored!r} starts with '~', which savi does not expand in a file (a stored path is relative "
                f"to the file's folder, or absolute, whoever reads it): write it absolute, or './{stored}' for a "
                f"folder named '~'")
    return None


def resolve_video_path(video: str, base: str | Path, *, confine: bool = False, file: str = "<memory>",
                       line: int | None = None, field: str = "video") -> Path:
    """The file a record's ``video`` value names.

    Args:
        video: the path as written in the record (relative or absolute; one starting with ``~`` is refused).
        base: the folder relative paths are resolved against: the data root when one is set, otherwise
            the caller's default (e.g. the folder of the manifest or preference file).
        confine: True when ``base`` is a data root the user set: the resolved path must stay inside it.
        file, line, field: where ``video`` came from, named in every error.

    Returns:
        ``base / video`` for a relative ``video``, else ``video`` itself; not
        normalised, so messages show the path the way the record wrote it.

    Raises:
        DataError: ``video`` is not a non-empty string, contains a NUL byte or starts with ``~`` (a home folder
            differs between users and machines, so a file naming one would read differently for each).
        PathEscapeError: with ``confine``, the path resolves outside ``base``.
    """
    if not isinstance(video, str) or not video.strip():
        raise DataError(file, line, field, "expected a non-empty path string")
    if "\x00" in video:
        raise DataError(file, line, field, "path contains a NUL byte")
    problem = stored_path_problem(video)
    if problem:
        raise DataError(file, line, field, problem)
    path = Path(video)
    if not path.is_absolute():
        path = Path(base) / path
    if confine and not is_within(path, base):
        raise PathEscapeError(file, line, field, f"path {video!r} resolves to {os.path.realpath(path)}, outside "
                              f"the data root {os.path.realpath(base)} (.., absolute paths and symlinks may not "
                              f"leave the data root)")
    return path


def video_file(video: str, base: str | Path, *, confine: bool = False, file: str = "<memory>",
               line: int | None = None, field: str = "video") -> Path:
    """The video file a record's ``video`` names (:func:`resolve_video_path`), which must be a regular file: the
    one check of a record's video before anything decodes it, made by training for each pair and by ``savi data
    validate`` for each record.

    Raises:
        DataError: as :func:`resolve_video_path`, or ``video file not found: <path>`` / ``<path>: <what it is>``
            (a folder, a FIFO, a broken link), the path shown by :func:`~savi_plugin.untrusted.shown_path`.
        PathEscapeError: with ``confine``, the path resolves outside ``base``.
    """
    from savi_plugin.data.files import file_problem
    from savi_plugin.untrusted import shown_path

    path = resolve_video_path(video, base, confine=confine, file=file, line=line, field=field)
    problem = file_problem(path, "video file")  # a FIFO, a directory, a broken link is named as what it is
    if problem:
        raise DataError(file, line, field, f"video file not found: {shown_path(path)}" if problem == "file not found"
                        else f"{shown_path(path)}: {problem}")
    return path


#: the run folders the current job declared (:func:`run_folder`), innermost last
_RUN_FOLDERS: ContextVar[tuple[Path, ...]] = ContextVar("savi_run_folders", default=())


@contextmanager
def run_folder(root: str | Path) -> Iterator[Path]:
    """Declare ``root`` the job's run folder while the block runs: a path that every file written inside it
    stores for something also inside it is relative (:func:`path_for_file`), so the folder can be moved whole.

    A job declares the folder it owns (its claimed ``--out``); files and paths outside it are unaffected.
    """
    folder = Path(absolute_path(root))
    token = _RUN_FOLDERS.set((*_RUN_FOLDERS.get(), folder))
    try:
        yield folder
    finally:
        _RUN_FOLDERS.reset(token)


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def path_for_file(path: str | Path, holder: str | Path) -> str:
    """``path`` as it is stored in the file ``holder``: relative to ``holder``'s folder, or absolute.

    Args:
        path: a path as the program holds it (absolute, or relative to the working folder).
        holder: the file the path is written into (absolute, or relative to the working folder).

    Returns:
        The POSIX-style path relative to ``holder``'s folder when ``path`` lies under that folder, or when both
        lie inside a declared run folder (:func:`run_folder`; then it may start with ``..``, never climbing
        above the run folder); else ``path`` made absolute. Symlinks are not followed (the stored path names
        what the user named).
    """
    absolute = Path(absolute_path(path))
    folder = Path(absolute_path(holder)).parent
    try:
        return absolute.relative_to(folder).as_posix()
    except ValueError:
        pass
    if any(_under(absolute, root) and _under(folder, root) for root in _RUN_FOLDERS.get()):
        return Path(os.path.relpath(absolute, folder)).as_posix()
    return str(absolute)


def file_itself(holder: str | Path) -> Path:
    """The file a name ``holder`` stands for: a symlink followed to the file it names (its real path), a name that
    is not a link as given (relative to the working folder exactly when ``holder`` is). What a file stores and
    what lies beside it (its run report, progress file, mark: :func:`savi_plugin.data.outputs.sidecar`) belong to
    the file itself, where its writer put them, not to a link naming it."""
    holder = Path(holder).expanduser()
    return Path(os.path.realpath(holder)) if holder.is_symlink() else holder


def file_folder(holder: str | Path) -> Path:
    """The folder the relative paths stored in file ``holder`` start from: the folder of the file itself
    (:func:`file_itself`).

    A symlink is followed to the file it names (a pair file linked into a project names the videos its writer
    stored beside the real file, which is where every savi writer puts them); a file that is not a link keeps
    the folder as named (relative to the working folder exactly when ``holder`` is).
    """
    return file_itself(holder).parent


def path_from_file(stored: str | Path, holder: str | Path) -> Path:
    """The path a file ``holder`` names with ``stored`` (the inverse of :func:`path_for_file`).

    A relative ``stored`` is joined to ``holder``'s folder (:func:`file_folder`: a symlink is followed to its
    file); an absolute one is kept. The result is relative to the working folder
    exactly when ``holder`` is (and is not a link). A stored ``~`` is a name like any other (savi never writes one):
    a file reads the same whoever reads it.
    """
    path = Path(stored)
    return path if path.is_absolute() else file_folder(holder) / path


def name_for_file(name: str | Path, holder: str | Path) -> str:
    """A model reference as the file ``holder`` stores it: a local path by :func:`path_for_file`, a hub id (a name
    that is nothing on this machine, e.g. ``org/model``) as given."""
    return path_for_file(name, holder) if os.path.exists(Path(str(name)).expanduser()) else str(name)


def path_for_peft(name: str | Path | None) -> str | None:
    """``base_model_name_or_path`` as peft's ``adapter_config.json`` stores it: absolute for a local path, since
    peft and transformers (``AutoPeftModel.from_pretrained``) read it relative to the working folder of whichever
    process loads the adapter, not to the adapter's folder; a hub id (or None) as given."""
    if name is None or not os.path.exists(Path(str(name)).expanduser()):
        return None if name is None else str(name)
    return absolute_path(Path(str(name)))


def shown_from_file(stored: Any, holder: str | Path) -> str:
    """A path the file ``holder`` stores, as a message names it to the user where they stand: resolved against
    ``holder``'s folder (:func:`path_from_file`), then relative to the working folder when it lies under it, else
    absolute. A stored relative path naming nothing there (a hub id, or a path an older savi stored relative to
    the folder it ran in) is shown as stored, with a note saying where it was looked for."""
    if not isinstance(stored, (str, Path)) or not str(stored):
        return repr(stored)
    found = path_from_file(stored, holder)
    if not Path(str(stored)).is_absolute() and not os.path.exists(found):
        return (f"{stored} (as {holder} names it; nothing of that name beside it, at {from_here(found)}: a hub "
                f"id, or a path stored relative to another folder)")
    return from_here(found)


def from_here(path: str | Path) -> str:
    """``path`` as a message names it to the user where they stand: relative to the working folder when it lies
    under it, else absolute."""
    absolute = absolute_path(path)
    relative = os.path.relpath(absolute)
    return relative if not relative.startswith("..") else absolute


def paths_for_file(value, holder: str | Path):
    """``value`` (a step summary, a results dict) with every path in it stored by the rule for file ``holder``.

    A string counts as a path when it contains a folder separator and names something that exists; other
    values (numbers, names, hub ids such as ``org/model`` that name nothing here) are kept. Dicts and lists
    are converted item by item; a :class:`~pathlib.Path` always counts as a path.
    """
    if isinstance(value, dict):
        return {k: paths_for_file(v, holder) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [paths_for_file(v, holder) for v in value]
    if isinstance(value, Path) or (isinstance(value, str) and ("/" in value or os.sep in value)
                                   and os.path.exists(value)):
        return path_for_file(value, holder)
    return value


#: ``(key path, may be a hub id)`` pairs naming the paths of a job's configuration (``"training.data_root"``: key
#: ``data_root`` of the dict at key ``training``); a hub id (``org/model``, nothing on this machine) is kept as given
PathKeys = Sequence[tuple[str, bool]]


def _with_paths(config: dict[str, Any], keys: PathKeys, convert: Callable[[str, bool], str]) -> dict[str, Any]:
    """A copy of ``config`` with each string at a ``keys`` key replaced by ``convert(value, is_name)`` (absent keys,
    None and other values, e.g. an inline DeepSpeed dict, are kept)."""
    out = copy.deepcopy(config)
    for key, is_name in keys:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), (str, Path)) and str(node[last]):
            node[last] = convert(str(node[last]), is_name)
    return out


def held_configuration(config: dict[str, Any], keys: PathKeys) -> dict[str, Any]:
    """``config`` with every local path at ``keys`` absolute (:func:`absolute_path`: ``..`` taken through the disk,
    the names after it kept: the path the user named), a hub id as given: how a job holds its configuration, whatever the working folder."""
    def absolute(value: str, is_name: bool) -> str:
        if is_name and not os.path.exists(Path(value).expanduser()):
            return value
        return absolute_path(value)

    return _with_paths(config, keys, absolute)


def configuration_for_file(config: dict[str, Any], holder: str | Path, keys: PathKeys) -> dict[str, Any]:
    """``config`` as the file ``holder`` stores it: each path at ``keys`` by :func:`path_for_file` (one that may be a
    hub id by :func:`name_for_file`, so a hub id stays as given). The one conversion every writer of a job's
    configuration uses (a training run's mark, config file and checkpoints; a generation run's mark, progress file
    and report): relative inside a declared run folder, absolute outside it as before."""
    return _with_paths(config, keys, lambda value, is_name: name_for_file(value, holder) if is_name
                       else path_for_file(value, holder))


def configuration_from_file(stored: dict[str, Any], holder: str | Path, keys: PathKeys) -> dict[str, Any]:
    """The configuration the file ``holder`` stores, each path at ``keys`` read back by :func:`path_from_file` and
    made absolute (the inverse of :func:`configuration_for_file` up to :func:`held_configuration`). A relative name
    that may be a hub id and names nothing beside ``holder`` is kept as stored."""
    def read(value: str, is_name: bool) -> str:
        found = absolute_path(path_from_file(value, holder))
        if is_name and not Path(value).is_absolute() and not os.path.exists(found):
            return value
        return found

    return _with_paths(stored, keys, read)


def check_data_root(root: str | Path | None, name: str = "--data-root") -> None:
    """A data root the user set must be an existing folder: a configuration error (exit 2) before the first item,
    not a ``file not found`` for every record under it.

    Raises:
        ConfigurationError: ``<name>: <root> does not exist`` / ``... is not a folder``.
    """
    from savi_plugin.data.files import file_problem
    from savi_plugin.errors import ConfigurationError

    if root is None:
        return
    if not os.path.exists(root):
        problem = file_problem(root, "data root")  # a broken link or a loop of links is named as one
        if problem and problem.startswith(("is a broken", "is a loop")):
            raise ConfigurationError(f"{name}: {root} {problem}; a data root is a folder")
        raise ConfigurationError(f"{name}: {root} does not exist (a data root is the folder relative video paths "
                                 f"start from)")
    if not os.path.isdir(root):
        raise ConfigurationError(f"{name}: {root} {file_problem(root, 'data root') or 'is not a folder'}; a data "
                                 f"root is a folder")
