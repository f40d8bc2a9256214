"""The shape of what a training run writes that ``savi plot`` reads back (:mod:`savi_plugin.shape`), declared once
beside the writer: ``train_report.json`` (:func:`savi_plugin.training.run.train`), a checkpoint's or the run
folder's ``trainer_state.json`` (transformers' ``TrainerState.save_to_json``) and the configuration stored beside a
checkpoint (:data:`~savi_plugin.data.identity.CHECKPOINT_FILE`, which names the loss of a killed run).

A reader checks a document whole against its shape before it reads anything from it: the log history is a list
of objects (one per logging event), and the loss a run names is a name as a configuration writes it. Each
document holds more than ``savi plot`` reads (the report's dataset counts; the Trainer's own keys, which its
version decides), so the other keys are left unread. The range of every logged number is
:func:`savi_plugin.data.metric_ranges.logged_range`'s, a rule between a row and the loss the file names.
"""

from __future__ import annotations

from savi_plugin.data.metric_ranges import NONNEGATIVE_LOSSES
from savi_plugin.shape import AnyObject, ListOf, Name, Record

#: the loss a run names (``training.loss_type``): a name a configuration accepts, and, where it reads as a loss
#: savi ships, exactly that loss's name -- ``RRPO`` or ``rrpo`` with a Cyrillic ``р`` is no registered loss (a
#: run refuses ``train.loss_type=RRPO``), so no run wrote it. A name of no installed loss passes: a plugin's loss,
#: plotted where the plugin is not installed (its loss has float32's range,
#: :func:`~savi_plugin.data.metric_ranges.loss_range`).
LOSS_TYPE = Name(what="a loss's name", exact=NONNEGATIVE_LOSSES)
#: the Trainer's log history: one object per logging event (a training step's metrics, an evaluation, the
#: summary); the numbers in it are checked by their names' ranges
LOG_HISTORY = ListOf(AnyObject(what="a log entry (an object of logged values)"))
#: ``train_report.json``: the run's loss and its log history
TRAIN_REPORT = Record("a training report", {"loss_type": LOSS_TYPE, "log_history": LOG_HISTORY}, open=True)
#: ``trainer_state.json``, as transformers' Trainer writes it
TRAINER_STATE = Record("a Trainer's state", {"log_history": LOG_HISTORY}, open=True)
#: the run identity a checkpoint carries: the configuration it trains, with its loss
CHECKPOINT_IDENTITY = Record("a checkpoint's run identity", {
    "config": Record("a stored configuration", {
        "training": Record("a stored training section", {"loss_type": LOSS_TYPE}, open=True)}, open=True)},
    open=True)
