"""``PreferenceTrainer``: video preference optimisation (DPO, IPO, RRPO) as a ``transformers.Trainer``.

Extending the framework's ``Trainer`` (as TRL does) keeps DeepSpeed, gradient accumulation, checkpoints,
resume and logging callbacks working as users expect. What this class adds:

* ``compute_loss``: one policy pass per pair over the packed row ``[video+question | chosen | rejected]``,
  one reference pass under ``no_grad`` on the same rows (adapter disabled) when the loss needs a reference, the
  vision encoder once per pair, the LM head on response positions only -- all in the one scoring path,
  :func:`savi_plugin.training.scoring.score_responses`, on the collator's
  :class:`~savi_plugin.training.batch.PreferenceBatch` -- then the loss registered under ``savi_plugin.losses``
  as ``args.loss_type``, reduced with the pairs' weights (:func:`savi_plugin.losses.base.weighted_mean`).
* Loss contract: the loss declares what it needs (:class:`savi_plugin.losses.base.Requirements`: token or
  sequence statistics, a reference or not, length normalisation, the KL and its sides, phrase tags) and its own
  checked hyper-parameters; :class:`savi_plugin.training.scoring.Objective` turns the flags into scoring
  options and loss inputs. Nothing here depends on a loss's name.
* Metrics with TRL's names -- ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies`` (chosen reward
  strictly greater; 0 at the first step, where policy == reference), ``rewards/margins``, ``logps/chosen``,
  ``logps/rejected`` -- plus ``kl/chosen`` (summed token KL(ref || policy) over the chosen response),
  ``truncated`` and ``nonfinite_steps``. They are accumulated on device over EVERY micro-batch (weighted by
  pairs) and averaged when logged -- not only the last micro-batch, as the official RRPO code does -- and
  reduced across processes only at logging time.
* Non-finite guard: a micro-batch whose loss or any metric the loss reports (its rewards, its own metrics) is
  not finite contributes a zero gradient, and the optimizer step
  it belongs to (also one with a non-finite gradient) is skipped: gradients are dropped before
  ``optimizer.step()``, so neither the weights nor the optimizer state change; ``nonfinite_steps`` counts them.
  ``skip_nonfinite=False`` raises ``FloatingPointError`` instead. Under DeepSpeed (which owns the gradients)
  a non-finite loss always raises.
* No step past ``max_steps``: a run resumed from a checkpoint at (or past) ``max_steps`` -- killed after saving
  its last checkpoint, before its report -- trains nothing more (:meth:`PreferenceTrainer.get_batch_samples`);
  transformers' loop checks ``max_steps`` only after a step, so it would train one step more and save it.
* A resumed run logs, evaluates and saves at its own intervals (``_CurrentIntervals``), not at the checkpoint's.
* Packing falls back to unpacked rows (logged once) where the attention implementation or the model family
  cannot take the block mask (:func:`savi_plugin.training.packing.packing_support`).

Under DDP/DeepSpeed the policy forward must go through the wrapper (DDP prepares gradient reduction in its
``forward``), so the statistics function is temporarily bound as the wrapped module's ``forward`` and the
wrapper is called; on a single process it is called directly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

from savi_plugin import registry
from savi_plugin.constants import DEFAULT_NUM_FRAMES
from savi_plugin.training.batch import PreferenceBatch
from savi_plugin.training.collator import PreferenceCollator, token_budget
from savi_plugin.training.config import PreferenceConfig
from savi_plugin.training.dataset import PreferenceDataset
from savi_plugin.training.packing import packing_support
from savi_plugin.training.scoring import Scores, score_responses

log = logging.getLogger(__name__)


def follow_device(reference_backend, device) -> None:
    """Put a separate frozen reference on ``device`` (where the policy and its batches are), once.

    The reference is loaded while the policy is still on the CPU (the Trainer, or DeepSpeed, places the policy
    later); scoring a batch on the GPU with a reference left on the CPU would fail at the first forward.
    """
    if reference_backend is None:
        return
    device = torch.device(device)
    if any(p.device != device for p in reference_backend.model.parameters()):
        reference_backend.model.to(device)


def load_reference_backend(path: str | Path, *, backend: str | None = None, dtype: str = "float32",
                           device: str = "cpu", num_frames: int = DEFAULT_NUM_FRAMES,
                           adapter: str | Path | None = None):
    """Load a separate frozen reference model (``reference="model"``): eval mode, no gradients."""
    from savi_plugin.models import load_backend

    reference = load_backend(path, backend, adapter=adapter, dtype=dtype, device=device, num_frames=num_frames)
    reference.model.eval()
    reference.model.requires_grad_(False)
    return reference


@contextlib.contextmanager
def _bound_forward(module: torch.nn.Module, fn):
    """Temporarily make ``fn`` the module's ``forward`` so a DDP/DeepSpeed wrapper can call it."""
    had_own = "forward" in module.__dict__
    previous = module.__dict__.get("forward")
    module.forward = fn
    try:
        yield
    finally:
        if had_own:
            module.forward = previous
        else:
            del module.forward


class _NonFiniteGuard(TrainerCallback):
    """Drops the gradients of a step that saw a non-finite loss or gradient, right before ``optimizer.step``."""

    def __init__(self, trainer: "PreferenceTrainer"):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._guard_optimizer_step()


class _CurrentIntervals(TrainerCallback):
    """The run's own ``logging_steps``, ``eval_steps`` and ``save_steps`` on a resume: transformers takes them from
    the checkpoint's ``trainer_state.json`` and only logs that they differ, so ``train.save_steps=20`` given to
    extend a finished run was not applied (a kill then lost every step since its last checkpoint)."""

    def on_train_begin(self, args, state, control, **kwargs):
        state.compute_steps(args, state.max_steps)


class PreferenceTrainer(Trainer):
    """A ``transformers.Trainer`` for video preference pairs (DPO / IPO / RRPO, or any registered loss).

    Args:
        backend: the policy :class:`~savi_plugin.models.backends.base.VideoLM`; ``backend.model`` (a peft
            model for ``reference="adapter"``) is what is trained.
        args: a :class:`~savi_plugin.training.config.PreferenceConfig`.
        train_dataset, eval_dataset: :class:`~savi_plugin.training.dataset.PreferenceDataset` objects, or paths
            of preference files (loaded with the config's format, data root and bad-record policy).
        data_collator: default: a :class:`~savi_plugin.training.collator.PreferenceCollator` for ``backend``.
        reference_backend: the frozen reference ``VideoLM`` for ``reference="model"`` (default: loaded from
            ``args.reference_model_path``).
        **kwargs: passed to ``transformers.Trainer`` (callbacks, optimizers, ...).
    """

    #: subclasses fix the loss (DPOTrainer: "dpo", RRPOTrainer: "rrpo")
    fixed_loss_type: str | None = None

    def __init__(self, backend=None, args: PreferenceConfig | None = None, train_dataset=None, eval_dataset=None,
                 data_collator=None, *, model=None, reference_backend=None, **kwargs):
        if backend is None:
            raise ValueError("PreferenceTrainer needs backend=<VideoLM> (see savi_plugin.models.load_backend)")
        if args is None:
            args = PreferenceConfig(output_dir="savi_preference_output", loss_type=self.fixed_loss_type or "rrpo")
        if not isinstance(args, PreferenceConfig):
            raise TypeError(f"args must be a PreferenceConfig, got {type(args).__name__}")
        if self.fixed_loss_type and args.loss_type != self.fixed_loss_type:
            log.info("%s: loss_type %r -> %r", type(self).__name__, args.loss_type, self.fixed_loss_type)
            args.loss_type = self.fixed_loss_type
        self.backend = backend
        self.objective = args.objective()
        needs = self.objective.requirements
        if args.label_names is None:
            args.label_names = []

        if needs.reference and args.reference == "model" and reference_backend is None:
            _check_reference_path(args.reference_model_path)
            reference_backend = load_reference_backend(
                args.reference_model_path, dtype=str(next(backend.model.parameters()).dtype).replace("torch.", ""),
                device=str(backend.device), num_frames=args.num_frames)
        self.reference_backend = reference_backend
        if args.disable_dropout:
            _disable_dropout(backend.model)
        if needs.reference and args.reference == "model":
            _check_same_tokenizer(backend, reference_backend, args.reference_model_path)

        from savi_plugin.training.distributed import setup_process_group

        setup_process_group(args)  # before the datasets: rank 0 probes the videos once and shares the results
        train_dataset = self._dataset(train_dataset, args)
        eval_dataset = self._dataset(eval_dataset, args)
        self.scoring_options = self.objective.scoring_options(args.reference)

        supported, why = packing_support(backend)
        self.packing = bool(args.packing and supported)
        if args.packing and not supported:
            log.warning("shared-prefix packing is off: %s; chosen and rejected run as two rows per pair", why)
        if data_collator is None:
            data_collator = PreferenceCollator(backend, num_frames=args.num_frames, frame_rule=args.frame_rule,
                                               packing=self.packing,
                                               max_length=args.max_length, video_backend=args.video_backend,
                                               template_positions=needs.template_kl, bad_records=args.bad_records,
                                               require_tags=needs.tags)
        elif getattr(data_collator, "packing", False) and not supported:
            data_collator.packing = False
        if hasattr(data_collator, "screen"):  # pairs the token budget cuts into no signal: before the first step
            for dataset in (train_dataset, eval_dataset):
                if isinstance(dataset, PreferenceDataset):
                    data_collator.screen(dataset)
        if hasattr(data_collator, "screen_decoded_bytes"):  # a batch size whose batches may exceed the memory budget
            for dataset, key in ((train_dataset, "per_device_train_batch_size"),
                                 (eval_dataset, "per_device_eval_batch_size")):
                if isinstance(dataset, PreferenceDataset):
                    data_collator.screen_decoded_bytes(dataset, getattr(args, key), f"train.{key}")
        if isinstance(train_dataset, PreferenceDataset):  # a batch or accumulation the data cannot fill: said once
            for line in data_size_warnings(len(train_dataset), args.per_device_train_batch_size,
                                           args.gradient_accumulation_steps, args.world_size,
                                           args.dataloader_drop_last):
                log.warning("%s", line)

        kwargs.setdefault("processing_class", backend.processor)
        super().__init__(model=model if model is not None else backend.model, args=args,
                         data_collator=data_collator, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         **kwargs)
        # Our loss is a per-batch mean: the Trainer must divide it by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        self._metric_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self._metric_counts: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self.nonfinite_steps = 0
        self.first_nonfinite: str | None = None  # what the first skipped step saw, for the run's failure line
        self._step_nonfinite = False
        self._past_max_steps_said = False  # the resume past max_steps is said once (get_batch_samples)
        # Losses of the optimizer steps that were applied: a skipped step is in neither `loss` nor `train_loss`.
        self._step_losses: list[torch.Tensor] = []
        self._decode_skips: set[tuple] = set()  # pairs the collator dropped, listed once in the dataset's report
        self._applied = {"window": [0.0, 0], "total": [0.0, 0]}  # [sum of step losses, steps]
        self.vision_calls = 0
        self.compute_loss = self._bounded_compute_loss  # each call, the subclass's method included: see there
        self.add_callback(_NonFiniteGuard(self))
        self.add_callback(_CurrentIntervals())
        if args.diagnostics:
            from savi_plugin.training.diagnostics import DiagnosticsCallback

            self.add_callback(DiagnosticsCallback(self, args.diagnostics_steps))
        self._reference_engine = None  # a separate reference under DeepSpeed runs in its own engine
        if self.is_deepspeed_enabled and self.reference_backend is not None:
            from savi_plugin.training.distributed import deepspeed_reference

            self._reference_engine = deepspeed_reference(self.reference_backend.model,
                                                         self.accelerator.state.deepspeed_plugin.deepspeed_config)
        else:
            follow_device(self.reference_backend, self.args.device)

    # ------------------------------------------------------------------ checkpoints
    def _get_output_dir(self, trial) -> str:
        """The Trainer's run folder, asked for just before it creates a checkpoint folder there: the outputs this
        job holds are checked first (:func:`~savi_plugin.data.outputs.check_live_outputs`), so a folder removed or
        moved away is not recreated by the save."""
        from savi_plugin.data.outputs import check_live_outputs

        run_dir = super()._get_output_dir(trial)
        check_live_outputs(run_dir)
        return run_dir

    def _save_checkpoint(self, model, trial) -> None:
        """The Trainer's checkpoint save, then a check that it landed in this job's output: an output folder
        moved away while it saved was recreated by the save (then what it wrote is removed) or replaced by another
        folder it wrote into (then the message names it) (:func:`~savi_plugin.data.outputs.check_write_landed`).

        Every save comes here, whatever decided it (a step, an epoch, an evaluation's best metric, ``max_steps``).
        First each callback's ``on_checkpoint_begin`` runs (the run identity,
        :func:`~savi_plugin.training.checkpoints.identity_callback`, is written into the folder before any file of
        the save), and every process waits for it: the others write their RNG state and DeepSpeed shards there."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        from savi_plugin.data.outputs import check_write_landed

        folder = Path(self._get_output_dir(trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        for callback in self.callback_handler.callbacks:
            begin = getattr(callback, "on_checkpoint_begin", None)
            if begin is not None:
                begin(self.args, self.state, self.control)
        self.accelerator.wait_for_everyone()
        try:
            super()._save_checkpoint(model, trial)
        except BaseException:
            check_write_landed(folder)  # the save failed in a folder no longer ours: that is what to say
            raise
        check_write_landed(folder)

    # ------------------------------------------------------------------ data
    def _dataset(self, dataset, args: PreferenceConfig):
        if dataset is None or not isinstance(dataset, (str, Path)):
            return dataset
        from savi_plugin.training.distributed import probed_once

        return probed_once(lambda probes: PreferenceDataset(
            dataset, self.backend.tokenizer, self.backend.end_of_turn, fmt=args.data_format, data_root=args.data_root,
            require_tags=self.objective.requirements.tags, bad_records=args.bad_records,
            token_budget=token_budget(args.max_length, getattr(self.backend, "context_length", None)),
            min_frames=args.num_frames, probes=probes))

    # ------------------------------------------------------------------ loss
    def _prepare_inputs(self, inputs: PreferenceBatch) -> PreferenceBatch:
        """The batch on the training device (the Trainer's own version walks dicts only)."""
        return inputs.map(self._prepare_input)

    def statistics(self, model: torch.nn.Module, inputs: PreferenceBatch) -> Scores:
        """The batch's scores (as the loss's requirements ask), the policy forward routed through any
        DDP/DeepSpeed wrapper."""
        fn = functools.partial(score_responses, self.backend, reference_backend=self.reference_backend,
                               chunk_size=self.args.logprob_chunk_size,
                               checkpoint_chunks=not is_deepspeed_zero3_enabled(), **self.scoring_options)
        if not self.is_deepspeed_enabled:  # DeepSpeed placed the reference with its engine (__init__)
            follow_device(self.reference_backend, self.args.device)  # placed with the policy (at train())
        unwrapped = self.accelerator.unwrap_model(model)
        # accelerate applies mixed precision by patching the model's ``forward``, which this path does not call;
        # its autocast context does the same here (a no-op without fp16/bf16, and under DeepSpeed).
        with self.accelerator.autocast():
            if model is unwrapped:
                return fn(inputs)
            with _bound_forward(unwrapped, fn):
                if self._reference_engine is None:
                    return model(inputs)
                # a ZeRO-3 reference gathers a layer's weights only inside its own engine's forward (as the
                # policy does inside the Trainer's): the scoring runs inside both
                with _bound_forward(self.reference_backend.model, lambda batch: model(batch)):
                    return self._reference_engine(inputs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Mean loss over the batch's pairs; metrics are stored for logging (see module docstring)."""
        self._count_decode_skips(model, inputs.skipped_records)
        if not inputs.pair_ids:  # every pair of the batch had a video that failed to decode (skipped)
            return self._empty_batch_loss(model, return_outputs)
        stats = self.statistics(model, inputs)
        self.vision_calls += stats.vision_calls
        loss, _, metrics = self.objective(stats, inputs)
        loss = self._finite_metrics_rule(loss, metrics)
        split = "train" if model.training else "eval"
        if torch.isfinite(loss):
            self._store_metrics(split, metrics)
            self._store_metrics(split, {"truncated": inputs.truncated.reshape(1).float()}, per_pair=False)
        return (loss, stats) if return_outputs else loss

    def _bounded_compute_loss(self, model, inputs, *args, **kwargs):
        """Every ``compute_loss`` call (transformers' training step, :meth:`prediction_step`), this class's or a
        subclass's, through the plugin boundary (:mod:`savi_plugin.plugin_call`): its error is named with the
        trainer, what it returned is checked (a scalar tensor, with a gradient when training), and the loss
        logged for the step is the one it returned -- the loss that is optimised -- or, non-finite, the step is
        skipped (:meth:`_nonfinite`)."""
        from savi_plugin import registry
        from savi_plugin.plugin_call import broken_contract, plugin_call

        name = getattr(self.args, "trainer", None)
        with plugin_call(registry.TRAINERS, name, self, "compute_loss"):
            result = type(self).compute_loss(self, model, inputs, *args, **kwargs)
        returned = kwargs.get("return_outputs", args[0] if args else False)
        loss = result[0] if returned and isinstance(result, tuple) else result
        problem = None
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            what = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else \
                f"a {type(loss).__name__}"
            problem = f"returned {what}, not a one-value loss tensor"
        elif model.training and torch.is_grad_enabled() and not loss.requires_grad:
            problem = "returned a loss that carries no gradient (detached): training could not change the model"
        if problem is not None:
            raise broken_contract(registry.TRAINERS, name, self, "compute_loss()", problem)
        if model.training and inputs.pair_ids:  # (a batch without pairs returns a zero loss, never logged)
            if torch.isfinite(loss):
                self._step_losses.append(loss.detach().reshape(()))
            else:
                loss = self._nonfinite(model, loss, inputs)
                result = (loss, *result[1:]) if returned and isinstance(result, tuple) else loss
        return result

    def _empty_batch_loss(self, model, return_outputs: bool):
        """A zero loss for a micro-batch whose every pair was skipped, through the same forward as a real one.

        The other ranks run the policy forward (and under ZeRO-3 gather parameters) in every collective; a rank
        that skipped the forward would leave DDP's reducer and DeepSpeed waiting for it forever. So this rank
        scores a stand-in pair (:func:`~savi_plugin.training.distributed.stand_in_batch`) and multiplies its loss
        by 0: the same graph, a zero gradient, no logged loss or metric.
        """
        from savi_plugin.training.distributed import stand_in_batch

        dataset = self.train_dataset if model.training else self.eval_dataset
        inputs = self._prepare_inputs(stand_in_batch(self.data_collator, dataset))
        loss, _, metrics = self.objective(self.statistics(model, inputs), inputs)
        # the metric names every rank reduces at logging time, with nothing added to their sums or counts
        split = "train" if model.training else "eval"
        sums, counts = self._metric_sums[split], self._metric_counts[split]
        for name in [*metrics, "truncated"]:
            nothing = torch.zeros((), device=loss.device)
            sums.setdefault(name, nothing)
            counts.setdefault(name, nothing.clone())
        zero = loss * 0.0
        return (zero, None) if return_outputs else zero

    def _finite_metrics_rule(self, loss: torch.Tensor, metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        """``loss``, or NaN when a metric the loss reports (its rewards, its own metrics) is not finite: one rule
        with a non-finite loss, so the micro-batch's step is skipped and counted (:meth:`_nonfinite`, which names
        the value) and its metrics never reach the logs or ``train_report.json``. No device->host sync here."""
        self._reported = (loss, metrics)  # what :meth:`_nonfinite` names
        if not metrics:
            return loss
        values = torch.cat([v.detach().float().reshape(-1).to(loss.device) for v in metrics.values()])
        return torch.where(torch.isfinite(values).all(), loss, torch.full_like(loss, float("nan")))

    def _nonfinite(self, model, loss: torch.Tensor, inputs) -> torch.Tensor:
        where = f"step {self.state.global_step + 1}, pairs {inputs.pair_ids}"
        reported, self._reported = getattr(self, "_reported", None), None
        what = f"{(_nonfinite_value(*reported) if reported is not None else None) or f'loss {loss.item()}'} of " \
               f"loss {self.args.loss_type!r}"
        if not self.args.skip_nonfinite:
            raise FloatingPointError(f"non-finite {what} at {where} (skip_nonfinite=False)")
        if self.is_deepspeed_enabled:
            raise FloatingPointError(f"non-finite {what} at {where}: under DeepSpeed the step cannot be "
                                     f"skipped safely (DeepSpeed owns the gradients)")
        log.warning("non-finite %s at %s: the optimizer step will be skipped", what, where)
        if self.first_nonfinite is None:
            self.first_nonfinite = f"{what} at step {self.state.global_step + 1}"  # its pairs: the warning
        self._step_nonfinite = True
        # A zero gradient for every trainable parameter keeps DDP's reduction in step across ranks; the
        # value stays non-finite so the Trainer's nan filter keeps it out of the logged loss.
        zero = sum((p.reshape(-1)[:1] * 0.0).sum() for p in model.parameters() if p.requires_grad)
        return zero + loss.detach()

    def _guard_optimizer_step(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        grads = [p.grad for p in params if p.grad is not None]
        # one device->host sync for all gradients, not one per parameter
        finite = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()) if grads else True
        # DeepSpeed steps inside backward() and skips a step whose gradient overflowed (non-finite) by itself
        bad = self._step_nonfinite or not finite or bool(
            self.is_deepspeed_enabled and getattr(self.optimizer, "step_was_skipped", False))
        if self.accelerator.num_processes > 1:
            flag = torch.tensor(float(bad), device=self.args.device)
            bad = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        self._step_nonfinite = False
        step_losses, self._step_losses = self._step_losses, []
        if not bad:
            if not step_losses:  # every micro-batch was empty (all its videos skipped): nothing was learned
                return
            step_loss = float(torch.stack(step_losses).mean())
            for key in ("window", "total"):
                self._applied[key][0] += step_loss
                self._applied[key][1] += 1
            return
        if not self.args.skip_nonfinite:
            raise FloatingPointError(f"non-finite gradient at step {self.state.global_step + 1} (skip_nonfinite=False)")
        for p in params:  # optimizers skip parameters without a gradient: no update, no state change
            p.grad = None
        self.nonfinite_steps += 1
        if self.first_nonfinite is None:
            self.first_nonfinite = f"gradient at step {self.state.global_step + 1}"
        log.warning("optimizer step %d skipped: non-finite loss or gradient (%d so far)", self.state.global_step + 1,
                    self.nonfinite_steps)

    def get_batch_samples(self, *args, **kwargs):
        """The micro-batches of the next optimizer step; none once ``global_step`` has reached ``max_steps``.

        transformers' loop (``Trainer._run_epoch``) asks whether to stop only after a step ends, so a run resumed
        from a checkpoint at ``max_steps`` inside an epoch (killed after saving its last checkpoint, before its
        report) would train one step past ``max_steps`` and save a checkpoint of it. With no micro-batch the
        remaining updates of the epoch do nothing, and the run ends at the checkpoint's step.
        """
        if 0 < self.args.max_steps <= self.state.global_step:
            if not self._past_max_steps_said:
                self._past_max_steps_said = True
                log.info("step %d: max_steps=%d is reached (resumed from its last checkpoint): nothing left to train",
                         self.state.global_step, self.args.max_steps)
            return [], None
        return super().get_batch_samples(*args, **kwargs)

    def _count_decode_skips(self, model, skipped) -> None:
        """List pairs the collator dropped (video failed only when decoded) in the dataset's report, once each."""
        dataset = self.train_dataset if model.training else self.eval_dataset
        if not hasattr(dataset, "skipped"):
            return
        for entry in skipped:
            key = (model.training, entry["file"], entry["line"])
            if key not in self._decode_skips:
                self._decode_skips.add(key)
                dataset.skipped.append(entry)
                log.warning("%s: skipped (%s): %s", entry["where"], entry["reason"], entry["message"])

    def _applied_mean(self, key: str) -> float | None:
        """Mean loss of the applied optimizer steps in ``key`` (``window``: since the last log; ``total``), all ranks."""
        total, steps = self._applied[key]
        if self.accelerator.num_processes > 1:
            both = self.accelerator.reduce(torch.tensor([total, float(steps)], device=self.args.device), "sum")
            total, steps = float(both[0]) / self.accelerator.num_processes, float(both[1]) / self.accelerator.num_processes
        return round(total / steps, 6) if steps else None

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation: the loss and the metrics (logged with an ``eval_`` prefix), no predictions."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # ------------------------------------------------------------------ metrics
    def _store_metrics(self, split: str, metrics: dict[str, torch.Tensor], per_pair: bool = True) -> None:
        sums, counts = self._metric_sums[split], self._metric_counts[split]
        for name, values in metrics.items():
            values = values.detach().float().reshape(-1)
            total = values.sum()
            count = torch.tensor(float(values.numel() if per_pair else 1), device=total.device)
            if name in sums:
                sums[name] = sums[name] + total
                counts[name] = counts[name] + count
            else:
                sums[name], counts[name] = total, count

    def _pop_metrics(self, split: str) -> dict[str, float]:
        sums, counts = self._metric_sums[split], self._metric_counts[split]
        if not sums:
            return {}
        names = sorted(sums)
        stacked = torch.stack([torch.stack([sums[n], counts[n].to(sums[n].device)]) for n in names])
        if self.accelerator.num_processes > 1:
            stacked = self.accelerator.reduce(stacked, reduction="sum")
        self._metric_sums[split], self._metric_counts[split] = {}, {}
        out = {}
        for name, (total, count) in zip(names, stacked.tolist()):
            out[name] = total if name == "truncated" else total / max(count, 1.0)
        return out

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged preference metrics (``eval_``-prefixed during evaluation) to the Trainer's logs."""
        # In place, so that ``evaluate()``'s returned metrics carry them too.
        if any(k.startswith("eval_") for k in logs):
            logs.update({f"eval_{k}": v for k, v in self._pop_metrics("eval").items()})
        else:
            logs.update(self._pop_metrics("train"))
            if "loss" in logs:  # the mean over the applied steps only (None: every step since the last log skipped)
                logs["loss"] = self._applied_mean("window")
                self._applied["window"] = [0.0, 0]
                logs["nonfinite_steps"] = self.nonfinite_steps
            if "train_loss" in logs:
                logs["train_loss"] = self._applied_mean("total")
        super().log(logs, start_time)


def _nonfinite_value(loss: torch.Tensor, metrics: dict[str, torch.Tensor]) -> str | None:
    """What the loss reported that is not finite, for a non-finite step's warning and the run's failure line:
    ``loss nan``, or the first metric that is not (``metric 'rewards/chosen' (nan)``); None when all are (a
    trainer's own ``compute_loss`` made the loss non-finite)."""
    if not bool(torch.isfinite(loss).all()):
        return f"loss {loss.item() if loss.numel() == 1 else loss.tolist()}"
    for name, value in metrics.items():
        flat = value.detach().float().reshape(-1)
        finite = torch.isfinite(flat)
        if not bool(finite.all()):
            return f"metric {name!r} ({flat[~finite][0].item()})"
    return None


def data_size_warnings(pairs: int, batch_size: int, accumulation: int, processes: int = 1,
                       drop_last: bool = False) -> list[str]:
    """What a batch size or accumulation above the data's size makes of the run, one line each (empty when
    neither is): the Trainer takes every pair in one smaller batch, and ends an epoch's accumulation at its last
    micro-batch, so an effective batch of ``batch_size x accumulation x processes`` pairs is silently smaller. As
    for a count above every clip's length, the run goes on (the pairs are trained on) and says so once, naming
    the key to lower."""
    per_process = -(-pairs // processes) if pairs else 0
    if pairs and batch_size > per_process:
        return [(f"train.per_device_train_batch_size={batch_size} is above the {per_process} pair(s) of the data "
                 f"per process ({pairs} pair(s), {processes} process(es)): each step trains on those {per_process} "
                 f"in one batch; lower train.per_device_train_batch_size to say what is trained")]
    micro = per_process // batch_size if drop_last else -(-per_process // batch_size)
    if pairs and accumulation > micro:
        return [(f"train.gradient_accumulation_steps={accumulation} is above the {micro} micro-batch(es) of "
                 f"{batch_size} an epoch holds per process ({pairs} pair(s), {processes} process(es)): each "
                 f"optimizer step accumulates at most {micro}, an effective batch of at most "
                 f"{micro * batch_size * processes} pair(s), not {batch_size * accumulation * processes}; lower "
                 f"train.gradient_accumulation_steps to say what is trained")]
    return []


def _disable_dropout(model: torch.nn.Module) -> None:
    """p = 0 in every dropout layer (LoRA's included), as TRL's ``disable_dropout`` and the official RRPO code do:
    the implicit reward compares policy and reference log-probs, which dropout would make noisy."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _check_reference_path(path: str | Path | None) -> None:
    """A local reference that is not a whole model checkpoint is a configuration error (exit status 2) naming
    ``train.reference_model_path``, before anything loads: a missing folder, or a LoRA adapter folder (the
    reference is a whole frozen model; an adapter's base is ``--model``'s job)."""
    from savi_plugin.data.files import folder_problem
    from savi_plugin.errors import ConfigurationError

    if not path:
        return
    folder = Path(path)
    if (folder / "config.json").is_file():
        return
    if (folder / "adapter_config.json").is_file():
        raise ConfigurationError(f"train.reference_model_path: {path}: a LoRA adapter folder, not a model; the "
                                 f"reference is a whole model checkpoint (the base model, or a merged model)")
    if folder.exists() or str(path).startswith((".", "/", "~")):
        raise ConfigurationError(f"train.reference_model_path: {path}: "
                                 f"{folder_problem(folder, 'config.json', 'a model folder')}")


def _check_same_tokenizer(policy, reference, path: str | Path | None = None) -> None:
    """A reference of another vocabulary is a configuration error (exit status 2), raised before the first step."""
    from savi_plugin.errors import ConfigurationError

    if policy.tokenizer.get_vocab() != reference.tokenizer.get_vocab():
        where = f"{path}: " if path else ""
        raise ConfigurationError(f"{where}train.reference_model_path: the reference model's tokenizer differs from "
                                 f"the policy's; the reference must score the same tokens (give a model of the "
                                 f"policy's family and tokenizer)")


class DPOTrainer(PreferenceTrainer):
    """:class:`PreferenceTrainer` with the sigmoid DPO loss (VideoSAVi's objective; ``savi_plugin.trainers: dpo``)."""

    fixed_loss_type = "dpo"


class RRPOTrainer(PreferenceTrainer):
    """:class:`PreferenceTrainer` with the RRPO loss (``savi_plugin.trainers: rrpo``); needs tagged pairs."""

    fixed_loss_type = "rrpo"


def trainer_class(name: str | None) -> type[PreferenceTrainer]:
    """The trainer class registered as ``name`` under ``savi_plugin.trainers`` (a recipe's ``train.trainer``);
    None is :class:`PreferenceTrainer`.

    A third-party trainer is a :class:`PreferenceTrainer` subclass in its own distribution with an entry point
    ``[savi_plugin.trainers] my_trainer = my_pkg.trainer:MyTrainer``.

    Raises:
        PluginError: the entry point cannot be loaded or is not a :class:`PreferenceTrainer` subclass.
    """
    if name is None:
        return PreferenceTrainer
    return registry.load(registry.TRAINERS, name)  # refuses an object that is no PreferenceTrainer subclass


registry.declare_kind(registry.TRAINERS, PreferenceTrainer)  # what a trainer entry is (registry.load)
