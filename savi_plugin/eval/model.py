"""``savi_video``: lmms-eval's model interface over our backends (any family, optional LoRA adapter).

Usage::

    lmms-eval --model savi_video \\
        --model_args pretrained=/ckpt/llava-video-7b,adapter=/runs/rrpo/adapter,num_frames=32,dtype=bfloat16 \\
        --tasks savi_mvbench,savi_egoschema,savi_perceptiontest --batch_size 4

Frames: decoded with :func:`savi_plugin.video.read_frames`, the sampler our generators and trainer use, by the
rule of the document's protocol (:mod:`savi_plugin.eval.protocols`): our default tasks take ``num_frames``
uniform frames (32 by default, VideoSAVi's protocol; within the record's ``start``/``end`` when the video is an
untrimmed MVBench source); the ``_lmms`` tasks 32 uniform frames over the whole clip, as lmms-eval's built-ins;
``savi_mvbench_official`` (16) and ``savi_mvbench_rrpo`` (64) the segment midpoints of MVBench's ``get_index``
within the record's bound. The task marks each document with its count, rule and bound (``savi_frames``,
``savi_num_frames``, ``savi_bound``).

Prompts: a protocol's system prompt and reply pre-fill (``savi_mvbench_official``: MVBench's system prompt and
``Best option:(``) go to the chat template's system turn and the start of the assistant turn; the response is
the continuation (:func:`prompt_framing`).

Bad settings (``num_frames=0``, ``max_new_tokens=0``, a negative temperature, in ``--model_args`` or
``--gen_kwargs``) are an error before any document is answered, naming the argument. A video that exists
but cannot be decoded is answered with an empty response and counted as ``bad_video`` by the task.

Under ``accelerate launch -m lmms_eval ...`` each process loads the model on its own GPU and
lmms-eval gives it every ``world_size``-th document (``rank``/``world_size`` come from accelerate),
as with lmms-eval's own models.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import (
    logger as log,  # lmms-eval's logger, so our messages follow its --verbosity
)
from tqdm import tqdm

from savi_plugin.eval.bad_videos import mark_bad, mark_control_text
from savi_plugin.eval.benchmarks import get as get_benchmark
from savi_plugin.eval.command import none_value
from savi_plugin.eval.data import MVBENCH_FRAME_FOLDER_FPS
from savi_plugin.eval.protocols import Protocol
from savi_plugin.eval.settings import (
    SaviVideoArgs,
    SettingError,
    check_gen_kwargs,
    checked_settings,
    exits_as_configuration_error,
)
from savi_plugin.models.backends.base import PromptTooLongError
from savi_plugin.models.backends.tokens import ControlTextError
from savi_plugin.video import BoundError, VideoDecodeError, read_frames, select_frames
from savi_plugin.video.decode import DEFAULT_NUM_FRAMES, check_clip_budget, frame_pixel_cap
from savi_plugin.video.frame_folder import frame_files
from savi_plugin.video.sampling import check_bound

#: Keyword arguments lmms-eval itself passes to every model (besides ``--model_args``).
_LMMS_EVAL_KWARGS = ("batch_size", "max_batch_size", "device")


#: model_args values are strings: ``""``/``none``/``null`` in any case are None (the one rule, by which a path
#: spelled so is also passed to lmms-eval as a link)
_none = none_value


def frames_from_directory(path: Path, num_frames: int, *, sampling: str = "uniform", bound=None,
                          fps: float = MVBENCH_FRAME_FOLDER_FPS) -> np.ndarray:
    """Frames from a folder of images (MVBench's frame-folder sources, TVQA ``frames_fps3_hq``).

    The images in numeric order (:func:`savi_plugin.video.frame_folder.frame_files`) are frames ``1 .. N`` at
    ``fps`` frames per second (3, the references' ``read_frame``); ``sampling`` and ``bound`` pick among them
    with :func:`savi_plugin.video.sampling.select_frames` (``first_idx=1``, ``max_frame=N``, as the references
    call ``get_index`` for folders). The references count every entry of the folder (``len(os.listdir)``) and
    open ``{k:05d}.jpg``; here only image files count, in numeric order: the same frames for a folder of
    ``00001.jpg`` .. ``000NN.jpg``.

    The decode caps hold as for a video file (the first chosen image's header against ``$SAVI_MAX_FRAME_PIXELS``
    and the clip against ``$SAVI_MAX_DECODED_BYTES``), and under the uniform rule a folder with fewer images than
    ``num_frames`` is refused, as a short video file is.

    Raises:
        VideoDecodeError: no images, numbered images with a gap, an image entry that is no file, a bound that
            is malformed or outside the frames (naming folder and bound), fewer images than ``num_frames``
            (uniform), or a frame or clip above a cap.
    """
    from PIL import Image

    files = frame_files(path)  # image files in numeric order; gaps, non-files refused
    if sampling == "uniform" and bound is None and len(files) < num_frames:  # as read_frames' callers rule
        raise VideoDecodeError(path, f"{len(files)} frame(s), fewer than num_frames={num_frames} (frames are never "
                                     f"repeated to fill a clip)", final=True)
    try:
        numbers = select_frames(sampling, num_frames, fps=fps, max_frame=len(files), first_idx=1,
                                bound=check_bound(bound))
    except BoundError as exc:
        raise VideoDecodeError(path, str(exc), final=True) from None
    log.debug("savi_video: {}: {} frames {}{}", path, sampling, numbers.tolist(), f" within {bound} s" if bound else "")
    with Image.open(files[numbers[0] - 1]) as first:  # the header only: the caps hold before any frame is decoded
        width, height = first.size
    if width * height > frame_pixel_cap():
        raise VideoDecodeError(path, f"frame {width}x{height} is above the cap of {frame_pixel_cap()} pixels "
                                     f"($SAVI_MAX_FRAME_PIXELS)", final=True)
    check_clip_budget(path, len(numbers), width, height)
    images = [Image.open(files[k - 1]).convert("RGB") for k in numbers]
    size = images[0].size
    return np.stack([np.asarray(im if im.size == size else im.resize(size)) for im in images])


def frames_from_images(images: Sequence[Any]) -> np.ndarray:
    """PIL images (an image task) as a short video, resized to the first image's size."""
    size = images[0].size
    return np.stack([np.asarray(im.convert("RGB").resize(size) if im.size != size else im.convert("RGB"))
                     for im in images])


#: Backend family -> the frame sampler of lmms-eval 0.7.3's own wrapper for it (``_lmms`` tasks).
FAMILY_FRAME_RULES = {"llava_onevision": "lmms_llava_onevision", "llava_video": "lmms_llava_vid",
                      "qwen2_vl": "lmms_qwen2_vl", "internvl": "lmms_internvl2"}


def _refuse_stray_launcher_env() -> None:
    """Refuse to evaluate in a process whose ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` no launcher
    set (:func:`savi_plugin.launch.stray_process_variables`, the rule the ``savi`` command applies).

    lmms-eval 0.7.3 reads ``RANK`` and ``WORLD_SIZE`` from the environment after the model is built
    (``evaluator.py`` ``simple_evaluate`` and ``evaluate``: it gives the model its rank and world size and
    evaluates that rank's share of the documents), so refusing here, in the constructor, stops the run before any
    document. Its ``cli_evaluate`` has built ``accelerate.Accelerator()`` before this: without ``LOCAL_RANK`` (on a
    GPU machine) and ``ACCELERATE_USE_CPU`` that stays one process and nothing was joined; with them accelerate
    tried to join the job, and either failed before this point or its rendezvous succeeded -- an initialised process
    group means the other processes exist (a launcher savi does not recognise, such as a script under ``srun``),
    and the run goes on as that job.

    Raises:
        SettingError: one line naming the variables and how to clear them.
    """
    import torch.distributed as dist

    from savi_plugin.launch import stray_process_variables

    stray = stray_process_variables()
    if not stray or (dist.is_available() and dist.is_initialized()):
        return
    values = ", ".join(f"{k}={os.environ[k]}" for k in stray)
    raise SettingError(f"savi_video: {values} set but no launcher (torchrun, deepspeed, accelerate launch) started "
                       f"this process, and lmms-eval would evaluate only its rank's share of the documents: unset "
                       f"them (unset {' '.join(stray)}) or start lmms-eval under a launcher")


@contextlib.contextmanager
def _configuration_as_setting_error():
    """A configuration error found while answering (a model whose context window fits no prompt: every document
    would fail alike) ends lmms-eval as one found before the first document: one line, exit status 2."""
    from savi_plugin.errors import ConfigurationError

    try:
        yield
    except ConfigurationError as exc:
        raise SettingError(f"savi_video: {exc}") from None


class SaviVideo(lmms):
    """An lmms-eval "simple" model backed by a savi-plugin :class:`~savi_plugin.models.backends.base.VideoLM`.

    Args:
        pretrained: model directory (or hub id on a machine with network access).
        adapter: optional peft LoRA adapter directory (e.g. from ``savi train``), applied on top.
        backend: backend name (``llava_onevision``, ``qwen2_vl``, ``llava_video`` ...); auto-detected
            from the checkpoint's ``config.json`` when omitted.
        dtype: ``float32`` / ``bfloat16`` / ``float16``; default bfloat16 on GPU, float32 on CPU.
        device: ``auto`` / ``cpu`` / ``cuda`` / ``cuda:1`` / ``mps``, one this machine has
            (:func:`savi_plugin.device.device_problem`); default ``auto``: the process's GPU, else CPU. Under a
            multi-process launch each process uses ``cuda:<local rank>``.
        num_frames: frames sampled uniformly per video (VideoSAVi: 32).
        fps, max_frames: sample at ``fps`` frames per second instead, capped at ``max_frames``.
        video_backend: ``pyav`` (default) or ``decord`` (the ``decord`` extra).
        batch_size: requests per ``generate`` call (lmms-eval's ``--batch_size``).
        max_new_tokens: default answer length when a task does not set one.
        trust_remote_code: passed to transformers; off unless asked for.
        attn_implementation: e.g. ``sdpa`` or ``flash_attention_2``.
        frame_rule: for the tasks that reproduce lmms-eval (``_lmms``), the frame sampler of lmms-eval's wrapper to
            follow (:data:`savi_plugin.video.sampling.LMMS_EVAL_RULES`, e.g. ``lmms_internvl2``); default: the one
            of the backend's family (:data:`FAMILY_FRAME_RULES`).
    """

    is_simple = True

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> SaviVideo:
        """lmms-eval's constructor from ``--model_args``, refusing a key given twice in it (split by the one
        ``model_args`` parser, :func:`savi_plugin.eval.command.split_model_args`: lmms-eval's own parse collapses the
        string into a dict, so only the raw string shows the repeat) and a key lmms-eval also passes from its own flags
        (``batch_size=`` with ``--batch_size``, ``device=`` with ``--device``): Python would stop the call with a
        ``TypeError`` (multiple values for one keyword) before any check here. A missing ``pretrained=`` and an
        unknown key are refused by ``__init__`` (one :class:`SettingError` each).

        Raises:
            SettingError: naming the key and lmms-eval's flag.
        """
        with exits_as_configuration_error():  # lmms-eval's process ends with exit status 2 and one line
            return cls._from_arg_string(arg_string, additional_config)

    @classmethod
    def _from_arg_string(cls, arg_string: str, additional_config: dict | None) -> SaviVideo:
        from lmms_eval.utils import simple_parse_args_string

        from savi_plugin.config.values import ConfigError
        from savi_plugin.eval.command import split_model_args

        given = {k: v for k, v in (additional_config or {}).items() if v is not None}
        try:  # a key given twice (lmms-eval's dict would keep the last silently), an item without "="
            split_model_args(arg_string or "")
        except ConfigError as exc:
            raise SettingError(f"savi_video: {exc}") from None
        args = simple_parse_args_string(arg_string)
        both = sorted(set(args) & set(given))
        if both:
            raise SettingError(f"savi_video: {', '.join(f'{k}=' for k in both)} in --model_args is also set by "
                               f"lmms-eval's {', '.join(f'--{k}' for k in both)}: give it once, as lmms-eval's flag")
        try:  # a keyword Python itself would refuse: one line, not a TypeError traceback
            inspect.signature(cls).bind(**args, **given)
        except TypeError as exc:
            raise SettingError(f"savi_video: --model_args {arg_string!r}: {exc}") from None
        return cls(**args, **given)

    def __init__(self, pretrained: str | None = None, adapter: str | None = None, backend: str | None = None,
                 dtype: str | None = None, device: str | None = None, num_frames: int = DEFAULT_NUM_FRAMES,
                 fps: float | None = None, max_frames: int | None = None, video_backend: str | None = None,
                 batch_size: int | str = 1, max_new_tokens: int = 16, trust_remote_code: bool = False,
                 attn_implementation: str | None = None, frame_rule: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        unknown = sorted(k for k in kwargs if k not in _LMMS_EVAL_KWARGS)
        if unknown:
            raise SettingError(f"savi_video: unknown model_args {', '.join(unknown)}; see "
                               f"savi_plugin.eval.model.SaviVideo for the accepted ones")
        from savi_plugin.eval.command import ambiguous_path_problem, empty_path_problem

        for key, value in (("pretrained", pretrained), ("adapter", adapter)):
            if ambiguous_path_problem(key, value):  # adapter=NONE beside a folder NONE: refused, not guessed
                raise SettingError(f"savi_video: {ambiguous_path_problem(key, value)}")
        if _none(pretrained) is None:  # the one required argument: a SettingError, not Python's TypeError
            raise SettingError("savi_video: model_args needs pretrained=<model path or hub id>")

        for key, value in (("pretrained", pretrained), ("adapter", adapter)):
            if empty_path_problem(key, value):  # adapter=$ADAPTER with the variable unset: not "no adapter"
                raise SettingError(f"savi_video: {empty_path_problem(key, value)}")
            if value is not None and not isinstance(value, (str, Path)):  # lmms-eval's typing: 1e5 -> 100000.0
                raise SettingError(f"savi_video: {key}={value!r}: lmms-eval reads this model_args value as a "
                                   f"{type(value).__name__}, not as a path; name the folder so that it is no number or "
                                   f"true/false (./NAME or an absolute path), or run `savi eval run`, which links it")
        _refuse_stray_launcher_env()
        from savi_plugin.environment import check_environment

        try:  # a bad SAVI_* variable: stop before the model loads, not per document
            check_environment()
        except ValueError as exc:
            raise SettingError(f"savi_video: {exc}") from None
        settings = checked_settings(SaviVideoArgs, {  # SettingError: one line, before anything is loaded
            "num_frames": num_frames, "fps": fps, "max_frames": max_frames, "video_backend": video_backend,
            "batch_size": batch_size, "max_new_tokens": max_new_tokens, "frame_rule": _none(frame_rule),
            "trust_remote_code": trust_remote_code})
        from accelerate import Accelerator

        from savi_plugin.models import load_backend

        accelerator = Accelerator()
        cuda = torch.cuda.is_available()
        if accelerator.num_processes > 1:
            device = f"cuda:{accelerator.local_process_index}" if cuda else "cpu"
            self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
        else:
            from savi_plugin.device import device_problem

            device = _none(device) or "auto"
            problem = device_problem(device)  # meta, xla, a GPU that is not here: one line before loading
            if problem:
                raise SettingError(f"savi_video: device={problem}")
            if device == "auto":
                device = "cuda" if cuda else "cpu"
        self.accelerator = accelerator
        self._device = torch.device(device)
        dtype = _none(dtype) or ("bfloat16" if self._device.type == "cuda" else "float32")
        from savi_plugin.models.backends.base import DTYPES

        if dtype not in DTYPES:
            raise SettingError(f"savi_video: dtype={dtype!r} is unknown; one of {', '.join(DTYPES)}")

        self.num_frames, self.fps, self.max_frames = settings.num_frames, settings.fps, settings.max_frames
        self.video_backend = settings.video_backend
        self.batch_size_per_gpu, self.max_new_tokens = settings.batch_size, settings.max_new_tokens
        try:
            self.lm = load_backend(str(pretrained), backend=_none(backend), adapter=_none(adapter), dtype=dtype,
                                   device=str(self._device), num_frames=self.num_frames,
                                   trust_remote_code=bool(settings.trust_remote_code),
                                   attn_implementation=_none(attn_implementation))
        except (OSError, ValueError, RuntimeError, ImportError, LookupError, TypeError) as exc:
            # a missing or foreign model or adapter, a family mismatch, a device that is not there: one line
            from savi_plugin.untrusted import printable

            what = f"pretrained={printable(pretrained)}" + (f", adapter={printable(adapter)}" if _none(adapter) else "")
            names = [str(p) for p in (pretrained, _none(adapter)) if p]
            raise SettingError(f"savi_video: cannot load {what}: {_first_line(exc, names)}") from None
        self.lmms_frame_rule = settings.frame_rule or FAMILY_FRAME_RULES.get(self.lm.family, "lmms_llava_onevision")
        frames = (f"{self.num_frames} frames" if self.fps is None else f"frames at fps={self.fps:g}" + (
            f" (at most {self.max_frames})" if self.max_frames is not None else " (as many as that gives)") +
            f" where a task samples uniformly, else {self.num_frames}")
        log.info("savi_video: {} ({}{}) on {}, {}, {}, rank {}/{}", pretrained, type(self.lm).__name__,
                 f" + adapter {adapter}" if _none(adapter) else "", self._device, dtype, frames,
                 self.rank, self.world_size)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # ------------------------------------------------------------------ inputs
    def load_visual(self, visuals: Sequence[Any], num_frames: int | None = None, *, sampling: str = "uniform",
                    bound=None) -> np.ndarray:
        """Frames ``(T, H, W, 3)`` uint8 for a doc's visuals (a video path, a frame folder or PIL images).

        ``num_frames`` (default: the model's) frames by the rule ``sampling``: ``uniform`` (or the model's
        ``fps``/``max_frames`` when set) or ``midpoints`` (MVBench's segments; the model's ``fps`` is not used),
        within ``bound`` (``[start, end]`` seconds) when given. The chosen frame numbers are logged at DEBUG.
        """
        num_frames = num_frames or self.num_frames
        if not visuals:
            raise VideoDecodeError("<none>", "the task gave no visual for this document")
        first = visuals[0]
        if isinstance(first, (str, Path)):
            path = Path(first)
            if len(visuals) > 1:
                log.warning("savi_video: {} visuals for one document; using the first, {}", len(visuals), path)
            if self.fps is not None and (sampling != "uniform" or path.is_dir()):
                self._warn_rate_unused("a frame folder" if path.is_dir() else f"frame rule {sampling!r}")
            if path.is_dir():
                return frames_from_directory(path, num_frames, sampling=sampling, bound=bound)
            rate = {"fps": self.fps, "max_frames": self.max_frames} if sampling == "uniform" else {}
            video = read_frames(path, num_frames, sampling=sampling, bound=bound, backend=self.video_backend, **rate)
            if sampling == "uniform" and self.fps is None and bound is None and 0 < video.total_frames < num_frames:
                # as in training (training/dataset.py): the clip cannot give the frames asked for, so the document
                # is counted (bad_video), not scored on repeated frames; the references' own frame rules
                # (midpoints, the _lmms samplers) keep their handling of short clips
                raise VideoDecodeError(path, f"{video.total_frames} frame(s), fewer than num_frames={num_frames} "
                                             f"(frames are never repeated to fill a clip)", final=True)
            log.debug("savi_video: {}: {} frames {}{}", path, sampling, video.indices.tolist(),
                      f" within {bound} s" if bound else "")
            return video.frames
        if hasattr(first, "convert"):  # PIL images
            return frames_from_images(visuals)
        raise VideoDecodeError(str(first)[:80], f"unsupported visual type {type(first).__name__}")

    def _warn_rate_unused(self, what: str) -> None:
        """Say once per ``what`` that ``fps``/``max_frames`` do not apply to it (it takes a number of frames)."""
        warned = self.__dict__.setdefault("_rate_unused_warned", set())
        if what not in warned:
            warned.add(what)
            log.warning("savi_video: fps={}{}: not used for {}, which samples num_frames frames", self.fps,
                        f", max_frames={self.max_frames}" if self.max_frames is not None else "", what)

    def _doc(self, task: str, split: str, doc_id: int) -> dict:
        return self.task_dict[task][split][doc_id]

    def _visual_for(self, doc_to_visual, task: str, split: str, doc_id: int, consequence: str) -> np.ndarray | None:
        """Frames for one request, or None after logging the file, the reason and ``consequence``."""
        doc = self._doc(task, split, doc_id)
        visuals = doc_to_visual(doc)
        try:
            if not isinstance(doc, dict):
                return self.load_visual(visuals)
            sampling = doc.get("savi_frames") or "uniform"
            sampling = self.lmms_frame_rule if sampling == "lmms" else sampling
            return self.load_visual(visuals, doc.get("savi_num_frames"), sampling=sampling, bound=doc.get("savi_bound"))
        except (VideoDecodeError, OSError) as exc:
            log.error("savi_video: {} doc {}: {}; {}", task, doc_id, exc, consequence)
            if visuals and isinstance(visuals[0], (str, Path)) and Path(visuals[0]).exists():
                mark_bad(str(visuals[0]))  # counted as bad_video (a missing file is counted as missing_video)
            return None

    # ------------------------------------------------------------------ generation
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer each request; requests with equal generation settings and equal system turn and reply pre-fill
        (their task's protocol, :func:`prompt_framing`) are batched (``--batch_size``)."""
        # every setting is checked (and parsed once) before the first document is answered; a bad one ends
        # lmms-eval's process with exit status 2 and one line
        with exits_as_configuration_error():
            settings = [check_gen_kwargs(dict(request.args[1])) for request in requests]
        self._warn_length_overrides(requests, settings)
        results: list[str | None] = [None] * len(requests)
        framings = [self._framing(request) for request in requests]
        groups: dict[str, list[int]] = {}
        for i, (request, framing) in enumerate(zip(requests, framings)):
            key = [request.args[1], framing.system, framing.prefill]
            groups.setdefault(json.dumps(key, sort_keys=True, default=str), []).append(i)
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="savi_video generate")
        with exits_as_configuration_error(), _configuration_as_setting_error():
            try:
                for indices in groups.values():
                    gen_kwargs = dict(requests[indices[0]].args[1])
                    for start in range(0, len(indices), self.batch_size_per_gpu):
                        chunk = indices[start:start + self.batch_size_per_gpu]
                        answers = self._generate_chunk([requests[i] for i in chunk], gen_kwargs,
                                                       [framings[i] for i in chunk])
                        for i, text in zip(chunk, answers):
                            results[i] = text
                            self.cache_hook.add_partial("generate_until", (requests[i].args[0],
                                                                           requests[i].args[1]), text)
                        progress.update(len(chunk))
            finally:  # the bar's line ends before an error's line
                progress.close()
        return [r if r is not None else "" for r in results]

    def _generate_chunk(self, chunk: list[Instance], gen_kwargs: dict,
                        framings: list[PromptFraming] | None = None) -> list[str]:
        """Answers for requests that share generation settings and one system turn and pre-fill (``framings``;
        default: each request's own, :meth:`_framing`)."""
        framings = framings or [self._framing(request) for request in chunk]
        out = [""] * len(chunk)
        by_shape: dict[tuple, list[tuple[int, np.ndarray, str]]] = {}
        for j, (request, framing) in enumerate(zip(chunk, framings)):
            _, _, doc_to_visual, doc_id, task, split = request.args[:6]
            frames = self._visual_for(doc_to_visual, task, split, doc_id, "answered with an empty response (scored wrong)")
            if frames is not None:  # the processor batches videos of equal shape only
                by_shape.setdefault(frames.shape, []).append((j, frames, framing.context))
        settings = check_gen_kwargs(gen_kwargs)  # the parsed values: "None" is unset, "false" is False
        temperature = settings.temperature or 0.0
        do_sample = bool(settings.do_sample) and temperature > 0
        kwargs = {"max_new_tokens": settings.max_new_tokens or self.max_new_tokens, "do_sample": do_sample,
                  "temperature": temperature if do_sample else 1.0, "top_p": settings.top_p or 1.0,
                  "system": framings[0].system, "prefill": framings[0].prefill}
        for items in by_shape.values():
            try:
                texts = self.lm.generate([f for _, f, _ in items], [c for _, _, c in items], **kwargs)
            except (PromptTooLongError, ControlTextError):
                # One over-long prompt (or one holding the model's control tokens) must not stop the benchmark:
                # answer the rest one by one and score the refused ones wrong (empty response), with the reason
                # in the log.
                texts = []
                for j, frames, context in items:
                    try:
                        texts.append(self.lm.generate([frames], [context], **kwargs)[0])
                    except (PromptTooLongError, ControlTextError) as exc:
                        request = chunk[j]
                        _, _, doc_to_visual, doc_id, task, split = request.args[:6]
                        if isinstance(exc, ControlTextError):  # counted under its reason, not as unparsed
                            mark_control_text(self._doc(task, split, doc_id))
                            counted = "counted in control_token_in_text"
                        elif self._count_unfit(doc_to_visual, task, split, doc_id):
                            counted = "counted in bad_video: the video does not fit the model's context at these frames"
                        else:
                            counted = "scored wrong"
                        log.error("savi_video: {} doc {}: {}; answered with an empty response ({})", task, doc_id,
                                  exc, counted)
                        texts.append("")
            for (j, _, _), text in zip(items, texts):
                out[j] = truncate_at_stop(text, gen_kwargs.get("until"))
        return out

    def _count_unfit(self, doc_to_visual, task: str, split: str, doc_id: int) -> bool:
        """Count a document whose prompt (its video's tokens and question) exceeds the model's context as
        ``bad_video`` (the video cannot be used with this model at these frames), not as a wrong answer: issue 21
        class 6. True when its video is a file the task counts by path."""
        visuals = doc_to_visual(self._doc(task, split, doc_id))
        if visuals and isinstance(visuals[0], (str, Path)) and Path(visuals[0]).exists():
            mark_bad(str(visuals[0]))
            return True
        return False

    def _warn_length_overrides(self, requests: list[Instance], settings: list) -> None:
        """Log once per task when ``--gen_kwargs`` gives a protocol task another answer length than its protocol's:
        the number is then no longer the reference's (the official grader reads a reply cut at a different place)."""
        seen: set[str] = set()
        for request, parsed in zip(requests, settings):
            _, _, _, doc_id, task, split = request.args[:6]
            proto = doc_protocol(self._doc(task, split, doc_id))
            length = parsed.max_new_tokens or self.max_new_tokens
            if (proto is not None and proto.name != "savi" and proto.max_new_tokens is not None
                    and length != proto.max_new_tokens and task not in seen):
                seen.add(task)
                log.warning("savi_video: {} generates {} new tokens, not its protocol's {} ({}): its score is not "
                            "comparable with the reference's", task, length, proto.max_new_tokens, proto.name)

    def _framing(self, request: Instance) -> PromptFraming:
        """The request's context split into user text, system turn and pre-fill by its doc's protocol."""
        context, _, _, doc_id, task, split = request.args[:6]
        return prompt_framing(context, self._doc(task, split, doc_id))

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("savi_video answers single-round questions only (generate_until); "
                                  "multi-round tasks are not supported")

    # ------------------------------------------------------------------ likelihood
    @torch.no_grad()
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """``(log P(continuation | video, context), greedy)`` per request.

        The context is formatted as the user turn and the continuation scored as the assistant's reply
        (leading whitespace dropped, no end-of-turn token), through the backend's own ``encode``, so the
        scored tokens are exactly those the model would generate.
        """
        results: list[tuple[float, bool]] = []
        for request in tqdm(requests, disable=self.rank != 0, desc="savi_video loglikelihood"):
            context, continuation, doc_to_visual, doc_id, task, split = request.args[:6]
            doc = self._doc(task, split, doc_id)
            if callable(continuation):
                continuation = continuation(doc)
            frames = self._visual_for(doc_to_visual, task, split, doc_id, "log-likelihood -inf")
            if frames is None:
                results.append((float("-inf"), False))
                continue
            results.append(self._continuation_logprob(frames, context, str(continuation).lstrip()))
        return results

    def _continuation_logprob(self, frames: np.ndarray, context: str, continuation: str) -> tuple[float, bool]:
        from savi_plugin.training.batch import scoring_batch
        from savi_plugin.training.scoring import score_responses

        ids, _ = self.lm.response_tokens(continuation, add_end_of_turn=False)
        batch = scoring_batch(self.lm, [frames], [context], {"response": [ids]})
        param = next(self.lm.model.parameters())
        batch = batch.map(lambda t: t.to(param.device, param.dtype if t.is_floating_point() else t.dtype))
        scores = score_responses(self.lm, batch, sides=("response",), greedy=True)["response"]
        return scores.total().item(), bool(scores.greedy[scores.mask].all().item())


def truncate_at_stop(text: str, until: Any) -> str:
    """Cut ``text`` at the first of the stop strings ``until`` (a str or a list; empty ones ignored)."""
    if not until:
        return text
    stops = [until] if isinstance(until, str) else list(until)
    cut = len(text)
    for stop in stops:
        if stop and stop in text:
            cut = min(cut, text.index(stop))
    return text[:cut]


@dataclass(frozen=True)
class PromptFraming:
    """How ``savi_video`` puts one request to the model (:meth:`VideoLM.prompt`).

    Attributes:
        context: the user turn's text.
        system: the system turn's text; None: the chat template's default.
        prefill: the start of the reply the model continues; the answer is the continuation alone.
    """

    context: str
    system: str | None = None
    prefill: str = ""


def doc_protocol(doc: Any) -> Protocol | None:
    """The protocol a savi task marked its doc with (``savi_benchmark``, ``savi_protocol``); None for other tasks."""
    if not isinstance(doc, dict) or doc.get("savi_benchmark") is None or doc.get("savi_protocol") is None:
        return None
    return get_benchmark(doc["savi_benchmark"]).protocol(doc["savi_protocol"])


def prompt_framing(context: str, doc: Any) -> PromptFraming:
    """The system turn and reply pre-fill of the doc's protocol, around the task's context.

    MVBench's official evaluation (OpenGVLab/Ask-Anything ``video_chat2/mvbench.ipynb``, ``infer_mvbench`` with
    ``system_llm=True``, ``answer_prompt="Best option:("``) gives its system prompt twice: as the conversation's
    system text (``chat.system``, before the first turn) and inline at the start of the user's text
    (``prompt = system + question + question_prompt``; the notebook's printed prompt shows both), then pre-fills
    the reply. The task's ``doc_to_text`` writes the user's text exactly so (so lmms-eval's logged ``input`` is
    the user turn the model saw); when it starts with the system prompt, that prompt also fills the chat
    template's system turn (a context that does not, e.g. an edited prompt, gets no system turn). Its trailing
    newline, VideoChat2's separator, is left out of the system turn: the template's turn end separates the turns.
    The protocol's ``answer_prefix`` is the pre-fill.
    """
    proto = doc_protocol(doc)
    if proto is None:
        return PromptFraming(context)
    system = proto.layout.system
    if system and context.startswith(system):
        return PromptFraming(context, system.rstrip("\n") or None, proto.answer_prefix)
    return PromptFraming(context, None, proto.answer_prefix)


def _first_line(exc: BaseException, names: list[str] = ()) -> str:
    """The first non-empty line of an error's message (never advice printed below it); a line break inside one of
    ``names`` (the paths the message names) is part of the name, written as its escape, not the end of a line."""
    from savi_plugin.untrusted import printable

    text = str(exc)
    for name in sorted(names, key=len, reverse=True):
        if any(c in name for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
            text = text.replace(name, printable(name))
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)

