"""Run identity: what a data file, a model or an adapter *is*, by content, so a resume, a merge or a load can tell
that it meets the same thing it was made with.

A path says where something is, not what it is: a manifest edited in place, model weights replaced at the same
path, or an adapter folder copied beside another base model keep their paths. Every output stores the identities
of what it was made from (with its configuration, :mod:`savi_plugin.data.fingerprint` compares them), and the
check names what changed.

* :func:`file_identity` -- a data file (manifest, preference pairs, recipe): ``size`` and the SHA-256 of its
  whole content.
* :func:`model_identity` -- a model or adapter folder: its ``family`` (``model_type`` of ``config.json``) and one
  digest over the files a loader reads (configuration, weights, tokenizer and processor files:
  :data:`MODEL_FILE_SUFFIXES`; a user's notes beside them are not the model), each listed with its size and
  digest so that a mismatch names the file that differs, each hashed whole (SHA-256). Sampling a weight file is not enough: a LoRA merged
  into the middle layers keeps the safetensors header (shapes and offsets) and the first and last tensors. A
  file larger than :data:`FULL_HASH_LIMIT` is hashed once per version and its digest kept in a cache
  (:func:`cached_digest`, ``$XDG_CACHE_HOME/savi/digests``) keyed by its device, inode, size, modification and
  change times: the change time (``ctime``) is set by the kernel on every write and cannot be set back, so a
  file written since is hashed again. A hub id (no such folder) is identified by its name.
* :func:`folder_identity` -- a folder of videos: every file's relative name, size and the digest of its first
  and last 4 KiB.

An adapter records the identity of the base model it was trained on in ``savi_adapter.json``
(:func:`write_adapter_identity`). :func:`check_adapter` is the one check every load of an adapter passes before
anything is loaded (``savi generate`` before its output is claimed, ``savi eval suite`` before lmms-eval runs,
``savi_video`` and every other load through :meth:`VideoLM.from_pretrained`): the folder is a peft adapter
(:func:`check_adapter_folder`), it was trained on this base (:func:`check_adapter_base`; a record that is there
but cannot be read is refused, never taken for "no record"), and its weight file is whole
(:func:`check_adapter_weights`). It warns once when the folder's ``savi train`` run has not finished
(:func:`unfinished_training`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Iterable

from savi_plugin.data.files import file_problem, read_json
from savi_plugin.data.watched import WatchedFiles
from savi_plugin.errors import ConfigurationError, DocumentTooLarge

log = logging.getLogger(__name__)

#: files up to this size are hashed at every look; a larger one once per version (:func:`cached_digest`)
FULL_HASH_LIMIT = 64 * 2**20
ADAPTER_FILE = "savi_adapter.json"
#: the configuration a ``savi train`` run keeps beside its adapter, for the reader (its ``lora`` section included)
TRAIN_CONFIG_FILE = "savi_train_config.json"
#: files in a folder that are ours (locks, marks, reports) and not part of what the folder holds
_NOT_CONTENT = (".savi.lock", ".savi-output.json", ADAPTER_FILE, "train_report.json", "savi_train_config.json")


class IdentityMismatchError(ConfigurationError):
    """An adapter meets another model than it was made with (one line): the job cannot run as configured, so it
    stops before its first item with nothing marked (exit status 2)."""


class AdapterFileError(ConfigurationError):
    """A file of an adapter folder that is there but cannot be read (``<file>[:<line>]: <why>``, one line): a torn
    ``savi_adapter.json``, a damaged ``adapter_config.json`` or weight file. The adapter the user named cannot be
    applied as asked, so the job stops before its first item with nothing marked (exit status 2)."""


def _digest_file(path: Path, size: int, edge: int | None = None) -> str:
    """SHA-256 of ``path``: of its whole content, or (``edge``) of its first and last ``edge`` bytes and size."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if edge is None:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(fh.read(edge))
            fh.seek(max(size - edge, 0))
            digest.update(fh.read(edge))
            digest.update(str(size).encode())
    return digest.hexdigest()


def digest_cache_folder() -> Path:
    """Where :func:`cached_digest` keeps digests: ``$XDG_CACHE_HOME/savi/digests`` (``~/.cache/savi/digests``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "savi" / "digests"


def cached_digest(path: Path) -> str:
    """SHA-256 of the whole content of ``path``; a file above :data:`FULL_HASH_LIMIT` is read once per version.

    The digest is kept under a key of the file's device, inode, size, modification and change times
    (nanoseconds). Any write to the file changes its change time, which no user call can set back, so a cached
    digest is never used for content it was not computed from. Without a writable cache the file is hashed at
    every call.
    """
    st = os.stat(path)
    if st.st_size <= FULL_HASH_LIMIT:
        return _digest_file(path, st.st_size)
    key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    entry = digest_cache_folder() / hashlib.sha256(key.encode()).hexdigest()
    with contextlib.suppress(OSError, UnicodeDecodeError):
        stored = entry.read_text(encoding="utf-8").split()
        if len(stored) == 2 and stored[0] == key:
            return stored[1]
    digest = _digest_file(path, st.st_size)
    with contextlib.suppress(OSError):
        from savi_plugin.data.outputs import write_text

        entry.parent.mkdir(parents=True, exist_ok=True)
        write_text(entry, f"{key} {digest}\n")
    return digest


def file_identity(path: str | Path) -> dict[str, Any] | None:
    """``{"size", "sha256"}`` of the whole content of ``path`` (None when it is not a file)."""
    path = Path(path)
    if not path.is_file():
        return None
    size = path.stat().st_size
    return {"size": size, "sha256": cached_digest(path)}


#: file endings in a model, adapter or video folder that are ours or pictures of it, not what it holds
_NOT_CONTENT_SUFFIXES = (".savi-output.json", ".lock", ".png", ".log", ".tmp")


def _members(folder: Path) -> list[Path]:
    """The files that make up ``folder``'s content: not hidden, not our reports, marks, locks, plots or logs, not
    the training checkpoints (a run's adapter is the same whether or not its checkpoints are kept)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                          p.relative_to(folder).parts)
                  and p.name not in _NOT_CONTENT and not p.name.endswith(_NOT_CONTENT_SUFFIXES)
                  and not p.relative_to(folder).parts[0].startswith("checkpoint-"))


def folder_identity(folder: str | Path, *, edge: int = 4 * 2**10, watch: WatchedFiles | None = None
                    ) -> dict[str, Any] | None:
    """One digest over every file of ``folder``: relative name, size and the digest of its edges (``edge``
    bytes at each end; small files whole). None when ``folder`` is not a folder. ``watch`` keeps each file's
    signature as it was hashed, and the folder's file list (:mod:`savi_plugin.data.watched`).

    A folder of videos can hold 10^5 files: 8 KiB read per file keeps this to seconds, and a video re-encoded
    or replaced changes its size or its container header (first KiB) or index (last KiB, where mp4 writers put
    ``moov``) with near certainty.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    members = _members(folder)
    if watch is not None:
        watch.add_folder(folder, lambda: _members(folder))
    for path in members:
        st = path.stat()
        size = st.st_size
        if watch is not None:
            watch.add(path, st)
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        digest.update(_digest_file(path, size, edge if size > edge * 2 else None).encode())
    return {"files": len(members), "sha256": digest.hexdigest()}


def files_identity(paths: Iterable[str | Path], *, edge: int = 4 * 2**10, watch: WatchedFiles | None = None
                   ) -> dict[str, Any]:
    """One digest over the files a manifest names, in its order: each one's size and the digest of its first and
    last ``edge`` bytes (8 KiB read per file, so 10^5 videos cost seconds; a missing file counts as size -1). A
    video replaced at the same path -- the manifest unchanged -- changes it, so a resume does not mix results of
    the old and the new file; where the files lie does not (the manifest's own identity holds what it names), so a
    folder moved whole is the same input. ``watch`` keeps each file's signature as it was hashed (the ``stat`` of
    the file opened; None for a missing one), so a job can tell that a file changed after its identity was taken
    (:mod:`savi_plugin.data.watched`)."""
    digest = hashlib.sha256()
    count = 0
    for path in paths:
        count += 1
        st = None
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):  # a FIFO or device is never opened (it would block or never end)
                raise IsADirectoryError(path)
            with open(path, "rb") as fh:  # the edges only, whatever the size: 8 KiB per video
                st = os.fstat(fh.fileno())  # the file read, even if another one took its name since the stat
                size = st.st_size
                head = fh.read(edge)
                fh.seek(max(size - edge, 0))
                part = hashlib.sha256(head + fh.read(edge)).hexdigest()
        except OSError:
            size, part = -1, ""
        if watch is not None:
            watch.add(path, st)
        digest.update(f"{size}\0{part}\0".encode())  # by content, not where: a folder moved whole is the same
    return {"files": count, "sha256": digest.hexdigest()}


#: the files of a model or adapter folder that a loader reads (transformers, peft, tokenizers, processors):
#: configuration, weights, tokenizer and processor files, chat templates, remote code. Anything else in the folder
#: (a user's NOTES.md, a README, plots) does not change what loads, so it is not part of the identity.
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".gguf",
                       ".model", ".tiktoken", ".jinja", ".py")
MODEL_FILE_NAMES = ("merges.txt", "vocab.txt")


def _model_members(folder: Path) -> list[Path]:
    """:func:`_members` of ``folder`` that a loader reads (:data:`MODEL_FILE_SUFFIXES`, :data:`MODEL_FILE_NAMES`)."""
    return [p for p in _members(folder) if p.name.endswith(MODEL_FILE_SUFFIXES) or p.name in MODEL_FILE_NAMES]


def could_be_hub_id(name: str) -> bool:
    """Whether ``name`` has the form of a hub id (``name`` or ``org/name``, by huggingface_hub's own rule) and not
    of a path (``./``, ``../``, ``~``, absolute, or more than one ``/``)."""
    if name.startswith(("./", "../", "~", "/")) or os.path.isabs(name):
        return False
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:  # no hub client: the form its rule admits
        import re

        return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and ".." not in name
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


class ModelNotFoundError(ConfigurationError):
    """A model or adapter reference that names nothing (:func:`check_model_reference`): a value to correct (exit
    status 2), found before anything is compared, claimed or loaded."""


def check_model_reference(path: str | Path) -> None:
    """The one rule for a model or adapter reference (``model.path``, ``--model``, ``--adapter``, a judge): a file
    or folder here, a ``tiny://`` address, or a hub id. One that names nothing here and cannot be a hub id (a typo,
    a recipe's relative ``model.path`` after the recipe moved) is refused before anything is compared or loaded,
    by every command: ``models/typ0/x: no such file or folder`` (never "identity.model changed content" on a resume,
    nor huggingface_hub's "Repo id must be in the form ..."). A broken symbolic link (or a loop of links) names
    nothing too, whatever its form, and is said as every reader says it (:func:`~savi_plugin.data.files.file_problem`):
    ``m/wlink: is a broken symbolic link (to base/models/warm)``, never taken for a hub id.

    Raises:
        ModelNotFoundError: naming the path.
    """
    name = str(path)
    if "://" not in name and os.path.islink(name) and not os.path.exists(name):
        from savi_plugin.data.files import file_problem

        raise ModelNotFoundError(f"{name}: {file_problem(name, 'model') or 'no such file or folder'}")
    if "://" in name or os.path.lexists(name) or could_be_hub_id(name):
        return
    raise ModelNotFoundError(f"{name}: no such file or folder")


def model_identity(path: str | Path | None, *, every_file: bool = False, watch: WatchedFiles | None = None
                   ) -> dict[str, Any] | None:
    """The identity of a model or adapter folder (see the module docstring); ``{"name": ...}`` for a hub id.

    ``members`` lists each loader file (:data:`MODEL_FILE_SUFFIXES`) with its size and digest, so a mismatch can
    name the file that differs (:func:`identity_differences`); ``sha256`` is one digest over them all.
    ``every_file``: over every file of the folder, loader's or not (the identity stored before ``members``
    existed, which :func:`check_adapter_base` still compares). ``watch`` keeps each file's signature as it was
    hashed (:mod:`savi_plugin.data.watched`): a training run tells from it whether its base changed on disk."""
    if path is None:
        return None
    folder = Path(path)
    if not folder.is_dir():
        check_model_reference(path)
        return {"name": str(path)}
    listing = _listed_identity(folder, _members(folder) if every_file else _model_members(folder), watch)
    family = None
    try:
        config = read_json(folder / "config.json")
        family = config.get("model_type") if isinstance(config, dict) else None
    except DocumentTooLarge:
        raise
    except (OSError, ValueError):
        pass
    found = {"family": family, "files": listing["files"], "sha256": listing["sha256"]}
    return found if every_file else {**found, "members": listing["members"]}


def _listed_identity(folder: Path, members: list[Path], watch: WatchedFiles | None = None) -> dict[str, Any]:
    """``{"files", "sha256", "members"}`` of ``members`` of ``folder``: each file by relative name, size and the
    SHA-256 of its whole content (:func:`cached_digest`), and one digest over them all."""
    digest = hashlib.sha256()
    listed = []
    for member in members:
        st = member.stat()
        size = st.st_size
        name = member.relative_to(folder).as_posix()
        part = cached_digest(member)
        if watch is not None:
            watch.add(member, st)
        digest.update(f"{name}\0{size}\0".encode())
        digest.update(part.encode())
        listed.append([name, f"{size}:{part}"])
    return {"files": len(members), "sha256": digest.hexdigest(), "members": listed}


def content_identity(folder: str | Path) -> dict[str, Any] | None:
    """Every file of ``folder`` (not hidden: our mark and locks are not its content) by name, size and the SHA-256
    of its whole content, listed so that :func:`identity_differences` names each file added, removed or changed.
    What a run step made and keeps (:func:`savi_plugin.data.outputs.step_product`). None when it is no folder."""
    folder = Path(folder)
    return _listed_identity(folder, _members(folder)) if folder.is_dir() else None


#: the fields of an identity (:func:`file_identity`, :func:`folder_identity`, :func:`files_identity`,
#: :func:`model_identity`, a hub id's ``name``): how a flattened configuration key tells an identity's own field
#: from the name of an input it identifies
IDENTITY_FIELDS = frozenset({"family", "files", "members", "name", "sha256", "size"})


def identity_differences(stored: dict | None, current: dict | None, limit: int = 4) -> str | None:
    """What tells two identities of one input apart, in words, or None when nothing but their digests does (or
    either is missing): the one wording of every identity comparison -- a run's continuation (model, adapter,
    videos, manifest: :func:`savi_plugin.data.fingerprint.describe_changes`), an adapter and its base, a job and
    the model it loaded, a checkpoint and what its run saved.

    * identities that list ``members`` (a model or adapter folder, a checkpoint): each file added, removed or
      changed, by name (``"model.safetensors changed, preprocessor_config.json added"``; at most ``limit``, then
      a count);
    * a folder of videos or the videos a manifest names: their number (``"files 2 -> 3"``);
    * a data file: its size (``"size 1200 -> 1180 bytes"``);
    * a hub id: its name (``"name org/a -> org/b"``).
    """
    if not isinstance(stored, dict) or not isinstance(current, dict):
        return None
    a, b = stored.get("members"), current.get("members")
    if isinstance(a, list) and isinstance(b, list):
        try:
            a, b = dict(a), dict(b)
        except (TypeError, ValueError):
            return None
        parts = [f"{n} {'removed' if n not in b else 'added' if n not in a else 'changed'}"
                 for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
        if len(parts) > limit:
            parts = parts[:limit] + [f"and {len(parts) - limit} more"]
        return ", ".join(parts) or None
    for field, unit in (("name", ""), ("files", ""), ("size", " bytes")):
        before, now = stored.get(field), current.get(field)
        if before is not None and now is not None and before != now:
            return f"{field} {before} -> {now}{unit}"
    return None


def input_identity(path: str | Path | None, *, watch: WatchedFiles | None = None) -> dict[str, Any] | None:
    """A data input by content: a file's :func:`file_identity`, a folder's :func:`folder_identity` (``watch``
    keeps the signature of each of its files)."""
    if path is None:
        return None
    path = Path(path)
    return file_identity(path) if path.is_file() else folder_identity(path, watch=watch) if path.is_dir() else None


def same_identity(a: dict | None, b: dict | None) -> bool:
    """Whether two stored identities name the same content (compared by digest, or by name for hub ids)."""
    if a is None or b is None:
        return a is b
    if "sha256" in a and "sha256" in b:
        return a["sha256"] == b["sha256"]
    return a == b


# --------------------------------------------------------------------------------------------- adapters
def write_adapter_identity(adapter_dir: str | Path, base: str | Path, backend: str | None, *,
                           stored_at: str | Path | None = None, identity: dict[str, Any] | None = None) -> Path:
    """Store the base model's identity in ``adapter_dir/savi_adapter.json`` (written by the training run).

    ``identity``: the base's :func:`model_identity` as the run took it when it started, before loading it (the
    training run passes it: the adapter was trained on those weights, even if the files at ``base`` were replaced
    while it ran); default: computed now.

    ``base_model`` is stored by the paths rule for the file's final place ``stored_at`` (default: where it is
    written; the training run writes into a temporary folder and moves the file into the adapter folder):
    relative to that folder, or absolute; a hub id as given (:func:`savi_plugin.data.paths.name_for_file`).
    """
    from savi_plugin.data.outputs import write_json
    from savi_plugin.data.paths import name_for_file

    record = Path(adapter_dir) / ADAPTER_FILE
    identity = model_identity(base) if identity is None else identity
    shape = adapter_shape(adapter_dir)
    return write_json(record, {"base_model": name_for_file(base, stored_at or record), "base_identity": identity,
                               "backend": backend, **({"adapter_config": shape} if shape is not None else {})})


#: the ``adapter_config.json`` fields that set how strongly an adapter applies (the update's scale,
#: ``lora_alpha / r`` or ``/ sqrt(r)``), which its weights cannot tell; which modules and which rank the weights
#: themselves show, and every load compares them (``check_adapter_weights``, ``VideoLM.from_pretrained``)
ADAPTER_SHAPE_FIELDS = ("lora_alpha", "use_rslora", "alpha_pattern")


def adapter_shape(adapter_dir: str | Path) -> dict[str, Any] | None:
    """The :data:`ADAPTER_SHAPE_FIELDS` of ``adapter_dir``'s ``adapter_config.json`` as written, or None (no file)."""
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        return None
    config = _read_adapter_json(path, "the adapter's peft configuration",
                                "the adapter folder is damaged: restore it from its training run, or train it again")
    return {key: config.get(key) for key in ADAPTER_SHAPE_FIELDS}


def check_adapter_as_trained(adapter_dir: str | Path) -> None:
    """Refuse an adapter whose ``adapter_config.json`` no longer sets the scale the run that trained it wrote (its
    ``savi_adapter.json`` records the :data:`ADAPTER_SHAPE_FIELDS`): ``lora_alpha`` 32 edited to 3200 scales every
    update 100 times and answers garbage under the adapter's name (LoRA, Hu et al. 2021, Sec. 4.1: the update is
    scaled by alpha / r). An adapter another tool wrote (no record, or a
    record without the fields) is not compared.

    Raises:
        AdapterFileError: naming the file, the field and both values.
    """
    record_path = Path(adapter_dir) / ADAPTER_FILE
    if not record_path.is_file():
        return
    record = _read_adapter_json(record_path, "the adapter's savi record", "restore it from the adapter's training run")
    trained, written = record.get("adapter_config"), ADAPTER_FILE
    if not isinstance(trained, dict):  # a record written before it held them: the run's own configuration says
        trained, written = _trained_scale(Path(adapter_dir) / TRAIN_CONFIG_FILE), TRAIN_CONFIG_FILE
    if not isinstance(trained, dict):
        return
    now = adapter_shape(adapter_dir) or {}
    changed = next((key for key in ADAPTER_SHAPE_FIELDS if key in trained and now.get(key) != trained[key]), None)
    if changed is not None:
        raise AdapterFileError(f"{Path(adapter_dir) / 'adapter_config.json'}: {changed}: {now.get(changed)!r}, but the "
                               f"run that trained this adapter wrote {trained[changed]!r} ({written}): the "
                               f"adapter would not apply as trained; restore adapter_config.json")


def _trained_scale(path: Path) -> dict[str, Any] | None:
    """The scale fields (:data:`ADAPTER_SHAPE_FIELDS`, as peft names them) of the ``lora`` section of a training
    run's ``savi_train_config.json`` (``alpha``; ``use_rslora`` when set), or None when there is none to read."""
    if not path.is_file():
        return None
    lora = _read_adapter_json(path, "the adapter's training configuration",
                              "restore it from the adapter's training run").get("lora")
    if not isinstance(lora, dict) or lora.get("alpha") is None:
        return None
    return {"lora_alpha": lora["alpha"], "use_rslora": bool(lora.get("use_rslora", False))}


def pair_digest(record) -> str:
    """What a preference pair is by content: the SHA-256 (first 16 hex digits) of its question, chosen and rejected
    text. Per-pair outputs (training diagnostics) store it with the id, so a reader joining them to a pair file
    by id can tell a row written for another file's pair of the same id."""
    text = json.dumps([record.question, record.chosen, record.rejected], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


#: the run identity a ``savi train`` run writes into every ``checkpoint-N`` (:mod:`savi_plugin.training.checkpoints`);
#: its ``config`` holds the base model's path and identity, so a checkpoint used as an adapter is checked too
CHECKPOINT_FILE = "savi_checkpoint.json"

#: the training report a finished ``savi train`` run writes last (a run removes it when it starts)
TRAIN_REPORT = "train_report.json"
#: what :func:`check_adapter_base` has warned of in this process: said once, though a job checks before it claims
#: its output and again as it loads
_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def unfinished_training(adapter_dir: str | Path) -> str | None:
    """Why the adapter in ``adapter_dir`` is not a finished run's, or None.

    A folder ``savi train`` made (its mark, :func:`savi_plugin.data.outputs.read_mark`) without
    ``train_report.json`` holds a run that is still going, was killed or failed: the adapter at its top level is
    whatever was last written there (an earlier run's result, when this run extended one), not this run's result,
    and its ``checkpoint-*`` folders may hold later states. It is usable (a killed run's last adapter often is), so loading it is said, not
    refused."""
    from savi_plugin.data.outputs import read_mark

    folder = Path(adapter_dir)
    if not folder.is_dir() or (folder / TRAIN_REPORT).is_file():
        return None
    mark = read_mark(folder, True)
    if not mark or mark.get("command") != "savi train":
        return None
    return (f"{folder}: its training run has not finished (no {TRAIN_REPORT}; still running, killed or failed): the "
            f"adapter files at its top level are not this run's result (an earlier run's when it extended one; "
            f"checkpoint-* folders may hold later states)")


#: the weight files peft's ``PeftModel.from_pretrained`` reads from an adapter folder, in its order of preference
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def check_adapter(adapter_dir: str | Path, base: str | Path | None) -> None:
    """The one check of an adapter before anything is loaded: (``base`` given) :func:`check_model_reference` of the
    base, :func:`check_adapter_folder`, then (``base`` given)
    :func:`check_adapter_base`, then :func:`check_adapter_weights` and :func:`check_adapter_as_trained` -- the base
    first, since an adapter meant for another model is refused whatever state its weights are in.

    Raises:
        ConfigurationError: naming the path (exit status 2); :class:`IdentityMismatchError` for another base,
            :class:`AdapterFileError` for a file that is there but cannot be read.
    """
    if base is not None:  # the model it would be applied to names something (as every command's model)
        check_model_reference(base)
    check_adapter_folder(adapter_dir)
    if base is not None:
        check_adapter_base(adapter_dir, base)
    check_adapter_weights(adapter_dir)
    check_adapter_as_trained(adapter_dir)


def _adapter_file_error(path: Path, what: str, remedy: str):
    """The ``error(message, line)`` of :func:`savi_plugin.data.files.read_json` for a file of an adapter folder."""
    def refuse(message: str, line: int | None = None) -> AdapterFileError:
        return AdapterFileError(f"{path}{f':{line}' if line else ''}: {what}: {message}; {remedy}")
    return refuse


def _read_adapter_json(path: Path, what: str, remedy: str) -> dict:
    """The JSON object at ``path`` (a file of an adapter folder), or :class:`AdapterFileError` naming it."""
    refuse = _adapter_file_error(path, what, remedy)
    try:
        data = read_json(path, refuse)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise refuse(f"expected a JSON object, got {type(data).__name__}")
    return data


def check_adapter_folder(adapter_dir: str | Path) -> None:
    """Refuse an ``adapter`` that is not a peft adapter folder (one holding ``adapter_config.json``, a JSON object),
    before any output is claimed or model loaded: peft would fail only after the base model is loaded, with its own
    message.

    Raises:
        ConfigurationError: naming the path and what it is instead; :class:`AdapterFileError` for an
            ``adapter_config.json`` that is torn or not an object.
    """
    from savi_plugin.data.files import folder_problem

    path = Path(adapter_dir)
    problem = folder_problem(adapter_dir, "adapter_config.json", "an adapter folder")
    if problem:
        raise ConfigurationError(f"adapter {adapter_dir}: {problem}; an adapter is the folder `savi train` (or "
                                 f"peft's save_pretrained) writes, holding adapter_config.json")
    _read_adapter_json(path / "adapter_config.json", "the adapter's peft configuration",
                       "the adapter folder is damaged: restore it from its training run, or train it again")


def safetensors_problem(path: str | Path) -> str | None:
    """Why the safetensors file at ``path`` cannot be loaded (safetensors' own reader of its header, which also
    checks that the file holds every byte the header names: a truncated or partly written file), or None. Reads
    the header only (the file is mapped, not read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except Exception as exc:  # noqa: BLE001 - safetensors' SafetensorError derives from Exception only
        text = str(exc).strip().splitlines()
        return f"damaged ({text[0] if text else type(exc).__name__})"
    return None


def damaged_weight_file(folder: str | Path) -> str | None:
    """``"<file>: damaged (...)"`` for the first ``*.safetensors`` file of ``folder`` that cannot be loaded, or
    None: names the file when a load of the folder failed on one (safetensors' error names no file)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            return f"{path}: {problem}"
    return None


def check_adapter_weights(adapter_dir: str | Path) -> None:
    """Refuse an adapter folder without a weight file peft reads (:data:`ADAPTER_WEIGHT_FILES`; one of those names
    that is a broken link or no regular file is named as what it is), whose
    ``adapter_model.safetensors`` (the one peft prefers) cannot be loaded (truncated, torn, not safetensors), or
    whose weights hold NaN or infinity (:func:`nonfinite_weight`; named by the file's key).

    Raises:
        AdapterFileError: naming the file (exit status 2).
    """
    from savi_plugin.data.model_config import adapter_config_problem

    folder = Path(adapter_dir)
    problem = adapter_config_problem(folder)  # before peft builds it: r=2^32-1 asked for 1 TiB
    if problem:
        raise AdapterFileError(f"{folder}: {problem}; restore the folder from its training run, or train it again")
    weights = adapter_weight_file(folder)
    for name in ADAPTER_WEIGHT_FILES:  # a name peft would read first, there but no file: a broken link, a folder
        if weights is not None and name == weights.name:
            break
        problem = file_problem(folder / name, "weight file")
        if problem and problem != "file not found":
            raise AdapterFileError(f"{folder / name}: the adapter's weight file {problem}; restore the folder from "
                                   f"its training run, or train it again")
    if weights is None:
        raise AdapterFileError(f"{folder}: the adapter holds no weights (none of {', '.join(ADAPTER_WEIGHT_FILES)}); "
                               f"an adapter is the folder `savi train` (or peft's save_pretrained) writes")
    if weights.name.endswith(".safetensors"):
        problem = safetensors_problem(weights)
        if problem:
            raise AdapterFileError(f"{weights}: the adapter's weights are {problem}; restore the folder from "
                                   f"its training run, or train it again")
    name = nonfinite_weight(weights)
    if name is not None:  # a file intact in its header, damaged or diverged in its values: every answer it gave
        # would be scored as the model's
        raise AdapterFileError(f"{weights}: the adapter's weight {name} holds NaN or infinity; restore the "
                               f"folder from its training run, or train it again")


def adapter_weight_file(adapter_dir: str | Path) -> Path | None:
    """The weight file peft reads from an adapter folder (the first of :data:`ADAPTER_WEIGHT_FILES` there), or None."""
    return next((Path(adapter_dir) / name for name in ADAPTER_WEIGHT_FILES if (Path(adapter_dir) / name).is_file()),
                None)


def weight_file_keys(path: str | Path) -> list[str]:
    """The tensor names of a weight file (safetensors: read from its header; a torch ``.bin``: loaded with
    ``weights_only=True``)."""
    import torch

    path = Path(path)
    if path.name.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            return list(fh.keys())
    state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    return [str(key) for key in state] if isinstance(state, dict) else []


def nonfinite_weight(path: str | Path) -> str | None:
    """The name of the first floating-point tensor of the weight file at ``path`` (safetensors, or a torch
    ``.bin`` read with ``weights_only=True``) holding NaN or infinity, or None. Reads one tensor at a time."""
    import torch

    path = Path(path)
    if path.name.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                tensor = fh.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    return key
        return None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except OSError:  # the machine's (a disk's I/O error): stays what it is
        raise
    except Exception as exc:  # noqa: BLE001 - a pickle torch refuses or cannot read: named, not a traceback
        text = str(exc).strip().splitlines()
        raise AdapterFileError(f"{path}: the adapter's weights cannot be read ({text[0] if text else type(exc).__name__})"
                               f"; restore the folder from its training run, or train it again") from None
    if not isinstance(state, dict):
        raise AdapterFileError(f"{path}: the adapter's weights are a {type(state).__name__}, not a state dict; "
                               f"restore the folder from its training run, or train it again")
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return str(key)
    return None


def check_adapter_base(adapter_dir: str | Path, base: str | Path) -> None:
    """Refuse to apply the adapter in ``adapter_dir`` to ``base`` when it was trained on another model.

    An adapter without ``savi_adapter.json`` (made by another tool, or with the file removed) is compared by what
    peft itself records: ``auto_mapping.base_model_class`` of its ``adapter_config.json`` against the ``architectures`` of the
    base's ``config.json``; another class is refused (peft would apply matching module names of another family
    silently), a missing record on either side is applied with one warning.

    Raises:
        IdentityMismatchError: naming the adapter, the base it was trained on and the model it meets.
    """
    unfinished = unfinished_training(adapter_dir)
    if unfinished:
        _warn_once(unfinished)
    # there but unreadable (torn by a kill, edited, a folder or FIFO at its name): it vouches for nothing, and is
    # not "no record" -- the fallback on peft's class record would apply the adapter to any model of the family
    remedy = (f"it records the base model the adapter was trained on, so the adapter cannot be checked against "
              f"{base}: restore the file from the adapter's training run")
    record = Path(adapter_dir) / ADAPTER_FILE
    if not os.path.lexists(record):
        record = Path(adapter_dir) / CHECKPOINT_FILE  # a training run's checkpoint-N: its run's base
        if not os.path.lexists(record):
            _check_peft_base_class(Path(adapter_dir), base)
            return
    problem = file_problem(record, "file")
    if problem:
        raise _adapter_file_error(record, "adapter record", remedy)(problem.removesuffix(", not a file"))
    stored = _read_adapter_json(record, "adapter record", remedy)
    try:
        if record.name == CHECKPOINT_FILE:
            stored = {"base_model": stored["config"]["model"], "base_identity": stored["config"]["identity"]["model"]}
        trained_on = stored["base_identity"]
        if not isinstance(trained_on, dict):
            raise TypeError
    except (KeyError, TypeError):
        field = "config.identity.model" if record.name == CHECKPOINT_FILE else "base_identity"
        raise _adapter_file_error(record, "adapter record", remedy)(f"{field}: missing or not an object") from None
    current = model_identity(base)
    if same_identity(trained_on, current):
        return
    if (trained_on or {}).get("sha256") and "members" not in trained_on and same_identity(
            trained_on, model_identity(base, every_file=True)):  # recorded over every file, before `members`
        return
    from savi_plugin.data.paths import shown_from_file

    trained_base = shown_from_file(stored.get("base_model"), record)  # named from where the user stands
    if not (trained_on or {}).get("sha256") or not (current or {}).get("sha256"):
        # a hub id on one side: its files are not here to compare; say so once instead of guessing
        _warn_once(f"{adapter_dir}: cannot verify that {base} is the base the adapter was trained on "
                   f"({trained_base}): one of them is not a local folder")
        return
    _refuse_other_base(adapter_dir, trained_on, trained_base, base, current)


def _refuse_other_base(adapter_dir: str | Path, trained_on: dict, trained_base: str, base: str | Path,
                       current: dict, source: str = "") -> None:
    """The one refusal of an adapter whose recorded base (identity ``trained_on``, named ``trained_base`` where the
    user stands; ``source``: which record names it) differs by content from ``base`` (identity ``current``).

    Raises:
        IdentityMismatchError: naming the family change, or the files that differ.
    """
    family_a, family_b = (trained_on or {}).get("family"), (current or {}).get("family")
    differs = identity_differences(trained_on, current) or "by content"
    what = (f"another model family ({family_a} -> {family_b})" if family_a and family_b and family_a != family_b
            else f"another base model (its files differ: {differs})")
    same_place = False
    with contextlib.suppress(OSError, TypeError):
        same_place = os.path.samefile(trained_base, base)
    if same_place:  # the base was replaced where it lies: name that, not two equal paths
        raise IdentityMismatchError(f"{adapter_dir}: the adapter was trained on the model at {base}{source}, whose "
                                    f"files have changed since: {what}; load it onto the model it was trained on")
    raise IdentityMismatchError(f"{adapter_dir}: the adapter was trained on {trained_base}{source} and would be "
                                f"applied to {base}, {what}; load it onto the model it was trained on")


def _json_field(path: Path, key: str) -> Any:
    try:
        data = read_json(path)
    except DocumentTooLarge:
        raise
    except (OSError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def _check_peft_base_class(adapter_dir: Path, base: str | Path) -> None:
    """An adapter without our record: when peft's ``base_model_name_or_path`` names an existing local model folder,
    compare that folder's identity with ``base`` (another content is refused as with our record, a copy loads);
    otherwise refuse a base whose architecture is not the class peft recorded."""
    from savi_plugin.data.paths import from_here

    mapping = _json_field(adapter_dir / "adapter_config.json", "auto_mapping")  # peft's record of the base class
    trained_class = mapping.get("base_model_class") if isinstance(mapping, dict) else None
    architectures = _json_field(Path(base) / "config.json", "architectures") if Path(base).is_dir() else None
    trained_on = _json_field(adapter_dir / "adapter_config.json", "base_model_name_or_path")
    if (not isinstance(trained_class, str) and isinstance(trained_on, str) and trained_on
            and (Path(trained_on) / "config.json").is_file() and Path(base).is_dir()):
        # no class recorded, but the base it names is a local folder: compare the two families
        family_a = _json_field(Path(trained_on) / "config.json", "model_type")
        family_b = _json_field(Path(base) / "config.json", "model_type")
        if family_a and family_b and family_a != family_b:
            raise IdentityMismatchError(
                f"{adapter_dir}: the adapter was trained on {trained_on} (per its adapter_config.json), a "
                f"{family_a} model, and would be applied to {base}, a {family_b} model; load it onto a model of "
                f"the family it was trained on")
    if (isinstance(trained_on, str) and trained_on and (Path(trained_on) / "config.json").is_file()
            and (Path(base) / "config.json").is_file()):
        # peft names a local model folder (read, as peft reads it, from the working folder): compare by content
        recorded, current = model_identity(trained_on), model_identity(base)
        if same_identity(recorded, current):
            return
        _refuse_other_base(adapter_dir, recorded, from_here(trained_on), base, current,
                           " (as peft's adapter_config.json names it)")
    if not isinstance(trained_class, str) or not isinstance(architectures, list) or not architectures:
        _warn_once(f"{adapter_dir}: the adapter has no {ADAPTER_FILE} and its base cannot be compared with {base}; "
                   f"applying it as it is")
        return
    if trained_class in architectures:
        return
    raise IdentityMismatchError(
        f"{adapter_dir}: the adapter was trained on a {trained_class} ({trained_on or 'base not recorded'}, per its "
        f"adapter_config.json) and would be applied to {base}, a {'/'.join(map(str, architectures))}; load it onto "
        f"a model of the class it was trained on")


def realpath_or_name(path: str | Path | None) -> str | None:
    """An existing path's real path, else the value as given (a hub id)."""
    if path is None:
        return None
    return os.path.realpath(path) if os.path.exists(path) else str(path)
