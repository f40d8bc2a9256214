"""The output layer: every file or folder a ``savi`` command writes goes through this package.

What holds for every output, by construction (README "Guarantees"):

* **A target is new, or ours for the same run** (:func:`claim`). An output that exists is written only when it
  carries our mark (:func:`mark_path`: ``<folder>/.savi-output.json`` or ``<file>.savi-output.json``) for the same
  command and the same configuration (a resume or an extension), and, for a file the job finished, the content
  the mark recorded (:meth:`Output.record_content`: a file someone changed since may be theirs now); a mark of
  another command or configuration is refused naming what changed, and an output without our mark (a user's file, a folder with files we did not
  write, ``--output-dir .`` in a project) is refused naming a file in it. A mark is ours only when it is a
  regular file holding a JSON object with ``"written_by": "savi"`` (:func:`foreign_mark`); anything else at its
  name (a user's text or JSON, a folder, a FIFO, a link), and a lock's name holding anything but a savi lock, is
  refused naming that path before anything is written.
* **A run folder's steps are the run's** (:func:`steps_problem`, :func:`check_not_in_run_step`): a command that
  writes its steps inside a folder it claimed (``savi ablate``'s ``OUT/<loss>``, ``savi align``'s ``iter_<i>``)
  names them in the claim (``steps``); one that exists and is not the run's -- a user's folder or file, another
  command's output -- is refused before the first step, naming what to move. The mark lists the steps, so
  another command's output at one of them is refused naming the run.
* **Another command's output is its own** (:func:`marked_above_by_another`): an output inside a folder another
  command marked, at any depth, is refused naming that folder, unless this job holds it (a run writes inside its
  own folder) or the caller writes there by design (``savi plot RUN_DIR``'s curves inside that run, no other).
* **An output is a regular file or a folder** (:func:`special_kind`, :func:`link_problem`): an existing FIFO,
  socket or device (also through a symlink, e.g. ``/dev/null`` or ``/dev/stdout``) is refused, never replaced by
  the final rename; so is a file output that is a symbolic link (the rename would replace the link, not write
  its target) and a link to nothing, and an output with a loop of links on its path (:func:`link_loop`: itself or
  a folder above it), named at the looping link. A folder output may be a link to a folder: it is written through
  the link, and replaced whole it is the folder the link leads to, the link kept (:func:`folder_behind_link`).
* **An output is never an input** (:func:`check_distinct`): not equal to, and not inside (nor, for a folder
  output, around) anything the job reads -- the model folder, a data file, the recipe, a video a manifest names.
  Paths are compared after ``..``, ``./`` and symlinks are resolved, by inode (a hard link is the same file), and
  case-insensitively where the file system is.
* **An output never lies in a training checkpoint** (:func:`check_not_in_checkpoint`): a checkpoint's run checks
  every file it holds when it resumes, so a plot, site or report written there would stop the run from being
  continued; refused for every writer, whether or not it reads the run.
* **One writer per output** (:class:`OutputLock`): an exclusive lock for the whole job, ``flock`` on
  ``<output>.lock`` (a file) or ``<folder>/.savi.lock`` (a folder), naming its holder, and first a *shadow*
  ``flock`` that removing that file (or the whole output) does not free: ``/tmp/savi-locks-<uid>/<digest>.lock``,
  keyed by the device and inode of the output's parent folder and its name (:func:`shadow_lock_path`); a running
  job puts back a removed lock file with one warning. An output inside a folder another live job holds is refused
  too (:func:`check_no_enclosing_job`). Where the file system does
  not support ``flock`` (some NFS and Lustre mounts raise ``ENOLCK``, ``EOPNOTSUPP`` or ``ENOSYS``) the lock falls
  back to a file created with ``O_EXCL`` (``<lock>.excl``) holding the holder's pid and host; a holder that is
  gone (same host, no such pid) is taken over, one on another host is respected.
* **Sidecars are named by the full output name** (:func:`sidecar`): ``pairs.jsonl`` and ``pairs.json`` never share
  a progress file, report or lock.
* **Writes are atomic, temporaries unique and always removed** (:func:`write_json`, :func:`write_text`,
  :func:`atomic_path`, :func:`temp_folder`): a temporary file is named ``.<name>.<pid>.<random>.tmp`` beside the
  destination and removed on every exit (success, exception, Ctrl-C); the destination is replaced by one
  ``rename``.
* **A file described by a run report never stands without it** (:func:`write_reported`): ``savi data convert``
  and ``savi generate merge`` write the data under a temporary name, write its report (the content identity is
  computed from the temporary), and only then rename the data into place; a failure at any point (a full disk at
  the report) leaves the data's name as it was.
* **A configuration error marks nothing** (:meth:`Output.undo`): when a ``ConfigurationError`` -- or any error
  or stop (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT: a ``KeyboardInterrupt``) before the first result (the job added only
  its mark, empty files and records of its configuration, :meth:`Output.wrote_record`) -- leaves the
  ``with claim(...)`` block of an output that was new, what the job created there (mark, sidecars, files, the
  folder) is removed, so the corrected command is not refused as "another configuration"; the boundary's line
  then says that nothing was written (:func:`command_outputs`).
* **An output removed or replaced under a running job stops it** (:meth:`Output.check_intact`): from its mark
  on, a job's output is known by its identity (a folder's device and inode, a file's folder and mark); the next
  write through this module into it (:func:`atomic_path`, :func:`move_into`, an appender's next line,
  :func:`check_live_outputs` at a training step) and the end of the ``with claim(...)`` block find it removed,
  replaced or without our mark, and the job stops with one line naming the output (:class:`OutputRemovedError`),
  writing nothing more there -- never a finished job in a recreated folder no mark claims.
* **A full disk names the destination** (:func:`disk_error`): ``ENOSPC``, ``EDQUOT`` and ``EFBIG`` become one
  ``OSError`` naming the file the user asked for, never a temporary name, and no temporary file is left.

Under a launcher only rank 0 takes a folder output's lock (the other ranks belong to the same job).

The layer is split by job, each module importing only those above it in this list: ``common`` (names and
errors), ``kinds`` (what stands at a path), ``disk`` (a full disk), ``names`` (sidecars, lock and mark names),
``holders`` (a lock's holder), ``state`` (what this process holds), ``places`` (inputs vs outputs), ``atomic``
(atomic writes), ``locks`` (:class:`OutputLock`), ``children`` (:func:`start_child`), ``marks`` (our mark),
``steps`` (a run folder's steps), ``claim`` (:func:`claim`). This package re-exports what callers use.
"""

from savi_plugin.data.outputs.common import (
    DISK_FULL_ERRNOS, ForeignOutputError, LOCK_NAME, MARK_NAME, NO_FLOCK_ERRNOS, OutputInCheckpointError,
    OutputIsInputError, OutputLockedError, OutputRemovedError)
from savi_plugin.data.outputs.kinds import (
    link_loop, link_problem, special_kind)
from savi_plugin.data.outputs.disk import (
    disk_error, disk_full_errno, disk_full_message)
from savi_plugin.data.outputs.names import (
    another, check_own_file, FAILED_LOG_HEADER, failed_log_path, file_output, folder_above_error,
    folder_above_problem, lock_path, mark_path, name_length_error, names_a_folder, short_path, sidecar,
    SIDECAR_KINDS, sidecar_shown, TEMP_NAME, _temp_name)
from savi_plugin.data.outputs.state import (
    check_live_outputs, check_write_landed, command_outputs, _ended, LOCK_CHECK_SECONDS, note_ended,
    reset_command_outputs)
from savi_plugin.data.outputs.places import (
    check_apart, check_distinct, check_not_any, check_not_in_checkpoint, checkpoint_holding, _real)
from savi_plugin.data.outputs.atomic import (
    atomic_open, atomic_path, copy_file, folder_behind_link, keep_failed_log, move_into,
    remove_failed_log, remove_stale_temps, remove_tree, replace_folder, temp_folder, write_bytes, write_json,
    write_jsonl, write_reported, write_text)
from savi_plugin.data.outputs.locks import (
    check_no_enclosing_job, made_folder, OutputLock, shadow_lock_folder, shadow_lock_path, STALE_SHADOW_SECONDS,
    writer_now)
from savi_plugin.data.outputs.children import (
    start_child)
from savi_plugin.data.outputs.marks import (
    FIXTURE_MARK_NAME, FIXTURE_WRITTEN_BY, folder_lock_file, folder_mark_command, foreign_mark, foreign_mark_error,
    foreign_marker, marked_output, MARKER_MAX_BYTES, parse_fixture_mark, read_mark, sidecar_clash)
from savi_plugin.data.outputs.steps import (
    check_not_in_run_step, enclosing_output_name, KEPT, marked_above_by_another, OWN, steps_error, steps_problem)
from savi_plugin.data.outputs.claim import (
    check_claim, check_place, claim, content_signature, folder_listing, LISTED_FILES, Output, step_product)
