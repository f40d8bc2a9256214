"""The names every part of the output layer shares: the lock's and the mark's file names, the errno sets,
and the errors an output raises."""

from __future__ import annotations

import errno

from savi_plugin.errors import ConfigurationError, RunError


LOCK_NAME = ".savi.lock"
#: our mark on an output: which command made it, with which configuration
MARK_NAME = ".savi-output.json"
#: errnos of a file system that has no ``flock`` (NFS without lockd, some Lustre mounts)
NO_FLOCK_ERRNOS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
#: errnos that mean the destination's file system is full or the file too large
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class OutputLockedError(RunError):
    """Another live process holds the output's lock; the message names it."""


class OutputIsInputError(ConfigurationError):
    """An output would overwrite or write into one of the job's inputs: a configuration error (exit status 2),
    found before the job starts."""


class OutputInCheckpointError(ConfigurationError):
    """An output would add files to a training checkpoint (:func:`checkpoint_holding`): its run's resume checks
    every file the checkpoint holds, so the run could not be continued. A configuration error (exit status 2)."""


class OutputRemovedError(RunError):
    """An output this job holds was removed or replaced while the job ran (:meth:`Output.check_intact`)."""


class ForeignOutputError(ValueError):
    """An output exists and was not written by this command with this configuration (one line naming it)."""
