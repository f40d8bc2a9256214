"""The failure taxonomy: every error that ends a job or an item belongs to one of three classes, defined here.

===================  ==========================================  ===============================================
class                what it says                                what a job does with it
===================  ==========================================  ===============================================
configuration        the job cannot run as asked: a bad value,   stop before the first item, nothing marked; the
(:class:`Config-     flag, recipe key or environment variable,   ``savi`` command prints one ``error:`` line and
urationError`)       an unknown task, a model that does not      exits 2
                     fit, a budget too small for the batch, a
                     frame count no clip can decode, a prompt
                     template holding the model's control
                     tokens
input                one item is bad: a video that cannot be     the item's failure is final: counted under its
(:class:`Input-      decoded or is above a size budget, a        reason and never retried (a re-run gives the
Error`)              record with a bad field, a prompt longer    same answer)
                     than the context
machine              the machine failed, not the input: out of   the item is *not* marked done; the next run
(:class:`Machine-    memory, an I/O error, a timeout, the model  retries it
Error`, and          raised
:func:`classify`)
===================  ==========================================  ===============================================

One more way a job ends is none of these: an input file changed while the job read it
(:class:`InputChangedError`, raised by :func:`savi_plugin.data.watched.check_unchanged`). The job stops at once as
for a configuration error (:func:`classify` says :data:`CONFIGURATION`, so no item is blamed or retried), but what
it made before is kept -- it is the old file's work, as the identity stored with the output says -- and the exit
status is 1.

Errors defined next to the code that raises them subclass one of these (``ConfigError`` of the configuration
rules, ``DataError`` of the record rules, ``VideoDecodeError`` of the decoder, ``PromptTooLongError`` of the
backends), so :func:`classify` decides for every caller: the generators' runner, the training dataset and the
evaluation model call it instead of deciding per ``except`` clause.
"""

from __future__ import annotations

import errno
import os

#: the three classes, as :func:`classify` names them
CONFIGURATION, INPUT, MACHINE = "configuration", "input", "machine"

#: the refusal of a checkpoint whose pickle holds Python objects, said by the model-file check
#: (:func:`savi_plugin.data.model_config.model_files_problem`, naming the file) and by the CLI's error boundary
#: for one met elsewhere
PICKLED_CHECKPOINT = ("refused to load a checkpoint that holds pickled Python objects: savi loads weights with "
                      "torch.load(weights_only=True) only, since unpickling a file can run any code; convert it to "
                      "safetensors with the tools of the project that wrote it")

#: ``errno`` values of a failing machine (disk, memory, network file system), not of a bad input file
MACHINE_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.ENOMEM, errno.ETIMEDOUT, errno.ESTALE, errno.EINTR,
                            errno.EBUSY, errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE})


class ConfigurationError(ValueError):
    """The job cannot run as configured; raised before the first item (exit status 2, argparse's for usage)."""

    exit_code = 2


class ConfigError(ConfigurationError):
    """A bad configuration value or key; ``str()`` is ``file: key.path: message`` (exit status 2).

    A ``source`` that knows which file or override set each key path (a loaded recipe's ``source``,
    :class:`savi_plugin.config.origins.KeySources`) is replaced by the one that set ``path``, so a check made
    after a recipe's files and overrides were merged still names where the value came from."""

    def __init__(self, path: str, message: str, source: str | os.PathLike | None = None):
        origin_of = getattr(source, "origin_of", None)
        if origin_of is not None:
            source = origin_of(path)
        self.path, self.message, self.source = path, message, (str(source) if source is not None else None)
        super().__init__(": ".join(p for p in (self.source, path, message) if p))

    def located(self, source: str | os.PathLike | None, prefix: str = "") -> ConfigError:
        """The same error placed in ``source`` under ``prefix`` (for errors raised without either)."""
        path = ".".join(p for p in (prefix, self.path) if p)
        return ConfigError(path, self.message, self.source or source)


class DocumentTooLarge(ConfigurationError):
    """A document above a cap that an environment variable sets -- its bytes (``$SAVI_MAX_DOCUMENT_BYTES``,
    :func:`savi_plugin.data.files.read_document`) or its JSON values (``$SAVI_MAX_DOCUMENT_VALUES``,
    :func:`savi_plugin.untrusted.load_json`); ``str()`` is one line naming the file, its size, the cap and the
    variable.

    The document is not damaged and may well be ours: the variable is what to correct (or the file is not the one
    meant), so this is a configuration error (exit status 2), raised by the cap check itself and never through a
    reader's own error class. Readers that report their errors as a damaged, unreadable or foreign file let it
    through (``except DocumentTooLarge: raise`` before a broad ``except``)."""

    def __init__(self, source: str | os.PathLike | None, size: str, cap: str, variable: str, what: str):
        self.source, self.variable = (str(source) if source is not None else None), variable
        message = f"{size}, above the {cap} cap on {what} (${variable}; raise it if the file is meant to be this large)"
        super().__init__(f"{self.source}: {message}" if self.source else message)


class InputError(ValueError):
    """One input item is bad; its failure is final (counted under the error's ``skip_reason`` when it has one)."""


class MachineError(RuntimeError):
    """The machine failed while working on an item; the item is retried by the next run."""


class RunError(RuntimeError):
    """A run refused or failed for a reason the message explains (one line, naming the file or folder): the
    output is in use by another process, or a finished run's result is not usable."""


class InputChangedError(RunError):
    """An input file changed while the job read it (one line naming it; :mod:`savi_plugin.data.watched`). The job
    stops at once: what it made before is the old file's work and matches the identity its output stores, so it
    is kept (exit status 1); a re-run is compared with that identity (it continues once the file is as it was,
    and is refused otherwise). :func:`classify` counts it as a reason to stop the job, never as an item's failure."""


def classify(exc: BaseException) -> str:
    """:data:`CONFIGURATION`, :data:`INPUT` or :data:`MACHINE` for an error raised while working on an item.

    The error's own class decides first (a ``ConfigurationError`` or an :class:`InputChangedError` anywhere in the
    cause chain stops the job);
    an ``OSError`` with a machine ``errno``, ``MemoryError`` and timeouts are the machine's; anything else the
    model or a library raised is the machine's too (retried, never marked final): a bug or a crash does not
    describe the input. A decoder's or a record check's error describes the input.
    """
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    if any(isinstance(e, (ConfigurationError, InputChangedError)) for e in chain):
        return CONFIGURATION
    for e in chain:
        if isinstance(e, (MemoryError, TimeoutError, ConnectionError, MachineError)):
            return MACHINE
        if isinstance(e, OSError) and e.errno in MACHINE_ERRNOS:
            return MACHINE
    if isinstance(chain[0], InputError) or getattr(chain[0], "skip_reason", None):
        return INPUT
    return MACHINE


def reason_of(exc: BaseException, default: str) -> str:
    """The reason an input failure is counted under: the error's ``skip_reason``, else ``default``."""
    return getattr(exc, "skip_reason", None) or default
