"""Video perturbations that provoke a model's typical failures (RRPO's non-preferred responses).

RRPO (Sarkar et al., arXiv 2504.12083; pritamqu/RRPO ``docs/index.html`` and the abstract) asks the model
about a *perturbed* video so that its wrong answers show the failure patterns worth penalising: weak
spatio-temporal understanding, spurious correlations between co-occurring concepts, and over-reliance on
language priors. The authors released no perturbation code. The only primary evidence of what they did is
the figure ``docs/assets/perturb.png`` ("An example of perturbed video"); a third-party summary of the paper
(papernotes.org, not checked against the paper's text, which was not available to us) says "frame masking
25%-50% + temporal shuffling".

**The default (:data:`DEFAULT_PERTURBATIONS`) reproduces the figure**: :func:`occlude_frames` with a
persistent box on *every* frame, then :func:`shuffle_frames`. Every frame is kept. Read off the figure
(1408x422 px; frames 315x204 px; box x 182-322, y 248-388, measured on the pixels):

- the box is a square in pixels (141 x 141), the same position in all four frames;
- it is smaller than the subject it sits on: in every perturbed frame parts of the puppies (ears, paws, a
  muzzle) stay visible around it. Its size is therefore set relative to the subject (``size="subject"``, the
  default): the box's area is ``subject_area=0.76`` of the subject's extent (:func:`subject_extent`, the box
  holding the central 90% of the clip's saliency). 0.76 is measured on the figure: :func:`subject_extent` of
  its four original frames is 186 x 141 px (x 119-305, y 25-166), and 141 x 141 / (186 x 141) = 0.76, so on
  the figure's own frames the box is the authors' 141 px square. (By eye the puppies span about 207 x 190 px
  over the four frames, running off the frame's right edge: the box is about half of that.) The fixed box of
  31% of the frame's area (``size="frame"``, ``area=0.31``; 45% of the width, 69% of the height) is the named
  alternative: it hides a small subject completely;
- it sits over the subject (the puppies), not at a random place: its centre is at 67% of the width and
  52% of the height, where the dogs are. How the authors placed it is not public; we place it over the
  most salient region (:func:`subject_box`: pixels that move over time, or stand out from the background
  colour), which covers the subject on the synthetic videos (tested) and overlaps the figure's own box with
  IoU 0.55 on the figure's original frames;
- it is flat light grey (RGB 245, 245, 245: ``fill=245``);
- the perturbed frames are in a different order than the originals (a temporal shuffle).

Hiding the subject leaves the co-occurring context (a beach, a boat, a kitchen) as the only evidence, so the
model's answer shows the spurious correlations RRPO's ``data.png`` pairs are made of; shuffling removes
order, direction and cause/effect.

The other perturbations are available by name for the other error patterns the paper names:

- :func:`mask_frames`: replace 25-50% of whole frames with a flat grey frame (the third-party summary's
  "frame masking"; information removed in time, so the model falls back on language priors);
- :func:`shuffle_frames`: a random temporal permutation (order, direction and cause/effect destroyed);
- :func:`reverse_frames`: play the clip backwards ("opens" looks like "closes": the open<->close error of
  ``data.png``);
- :func:`drop_frames`: remove 25-50% of the frames and hold the previous frame instead (short events vanish);
- :func:`blur_frames`: pixelate every frame (fine spatial detail such as small objects and attributes is lost).

All functions are pure: they take a uint8 array ``(T, H, W, 3)`` and a ``numpy.random.Generator``, never
modify their input, keep ``T`` (processors and the frame count in the record's metadata stay valid) and
return ``(new_frames, info)`` where ``info`` is a JSON-able description of exactly what was done, for the
record's ``meta.perturbation``. The same generator state gives the same result.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

Fraction = float | Sequence[float]

#: Box area as a share of the frame, read off ``perturb.png`` (141 x 141 px box on 315 x 204 px frames):
#: ``size="frame"``.
OCCLUDER_AREA = 0.31
#: Box area as a share of the subject's extent (:func:`subject_extent`), measured on ``perturb.png``: 141 x 141 px
#: over the 186 x 141 px extent of its original frames (``size="subject"``, the default).
OCCLUDER_SUBJECT_AREA = 0.76
#: What the box's size is relative to: the subject (default, parts of it stay visible) or the frame.
OCCLUDER_SIZES = ("subject", "frame")
#: Share of the clip's saliency inside :func:`subject_extent`.
SUBJECT_MASS = 0.9
#: Box colour in ``perturb.png`` (RGB 245, 245, 245).
OCCLUDER_FILL = 245

#: The default, as in RRPO's ``perturb.png``: a persistent box over the subject on every frame, then shuffle.
DEFAULT_PERTURBATIONS: tuple[dict[str, Any], ...] = (
    {"name": "occlude"},
    {"name": "shuffle"},
)

POSITIONS = ("subject", "random", "center")


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        raise ValueError(f"frames must be a numpy array (T, H, W, 3), got shape {shape}")
    if frames.shape[0] == 0:
        raise ValueError("frames must contain at least one frame")


def _whole(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as a whole number in ``[low, high]``, or ValueError naming ``name`` (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
    return int(value)


def _draw_fraction(rng: np.random.Generator, fraction: Fraction) -> float:
    """A fraction in ``[lo, hi]`` drawn uniformly (or the fixed value); checked to lie in [0, 1]."""
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool):
        lo = hi = float(fraction)
    else:
        if not isinstance(fraction, (list, tuple)) or len(fraction) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in fraction):
            raise ValueError(f"fraction must be a number or a [low, high] pair, got {fraction!r}")
        lo, hi = (float(v) for v in fraction)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"fraction must satisfy 0 <= low <= high <= 1, got {fraction!r}")
    return lo if lo == hi else float(rng.uniform(lo, hi))


def _pick_frames(rng: np.random.Generator, num_frames: int, fraction: Fraction) -> np.ndarray:
    """Sorted indices of ``round(fraction * T)`` distinct frames (at least one when the fraction is > 0)."""
    f = _draw_fraction(rng, fraction)
    k = int(round(f * num_frames))
    if f > 0:
        k = max(k, 1)
    return np.sort(rng.choice(num_frames, size=min(k, num_frames), replace=False))


def mask_frames(frames: np.ndarray, rng: np.random.Generator, *, fraction: Fraction = (0.25, 0.5),
                fill: int = 128) -> tuple[np.ndarray, dict[str, Any]]:
    """Replace a random ``fraction`` of the frames with a flat frame of value ``fill``.

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        rng: the random generator (the frame choice and the drawn fraction come from it).
        fraction: the share of frames to mask, fixed or drawn uniformly from ``[low, high]``
            (RRPO: 25-50%).
        fill: grey level of a masked frame (128: mid grey, like the figure's box).
    """
    _check_frames(frames)
    picked = _pick_frames(rng, frames.shape[0], fraction)
    out = frames.copy()
    out[picked] = np.uint8(_whole("fill", fill, 0, 255))
    return out, {"name": "mask", "frames": picked.tolist(), "fill": int(fill)}


def box_size(height: int, width: int, area: float, aspect: float = 1.0) -> tuple[int, int]:
    """``(box_height, box_width)`` in pixels for a box of ``area`` (share of the frame) and ``aspect``
    (width / height in pixels; 1.0 is a square, as in ``perturb.png``), clipped to the frame."""
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must be in (0, 1], got {area!r}")
    if aspect <= 0:
        raise ValueError(f"aspect must be > 0, got {aspect!r}")
    bh = (area * height * width / aspect) ** 0.5
    bh, bw = min(height, bh), min(width, bh * aspect)
    return max(1, int(round(bh))), max(1, int(round(bw)))


def saliency(frames: np.ndarray) -> np.ndarray:
    """Where the subject is: per pixel, how much it changes over time (mean distance from its temporal mean),
    plus a fifth of how far it is from the frame's background colour (median), so that a still subject on a
    plain background is found too. Motion dominates because in a cluttered scene the subject is what moves:
    on the four original frames of ``perturb.png`` this puts the box at 60-100% of the width and 12-81% of
    the height, overlapping the authors' box with IoU 0.55 (the background-colour term alone picks the white
    wall: IoU 0.1).

    Returns:
        float32 ``(H, W)``.
    """
    f = frames.astype(np.float32)
    moving = np.abs(f - f.mean(0, keepdims=True)).sum(-1).mean(0)
    background = np.median(f.reshape(f.shape[0], -1, 3), axis=1)[:, None, None, :]
    static = np.abs(f - background).sum(-1).mean(0)
    return moving + 0.2 * static


def subject_extent(frames: np.ndarray, mass: float = SUBJECT_MASS) -> list[int]:
    """``[y0, x0, y1, x1]``: where the subject is over the clip, the box holding the central ``mass`` of the
    :func:`saliency` above its median (per axis, from the ``(1 - mass) / 2`` to the ``(1 + mass) / 2`` quantile
    of the marginal). A clip with no salient pixel (uniform) gives the whole frame. On ``perturb.png``'s four
    original frames: x 119-305, y 25-166 (186 x 141 px). Computed on the same grid as :func:`subject_box`.
    """
    _, h, w, _ = frames.shape
    stride = max(1, min(h, w) // 128)
    sal = saliency(frames[:, ::stride, ::stride]).astype(np.float64)
    sal = np.clip(sal - np.median(sal), 0.0, None)
    if not sal.sum() > 0:
        return [0, 0, h, w]
    tail = (1.0 - mass) / 2

    def span(marginal: np.ndarray, limit: int) -> tuple[int, int]:
        cumulative = np.cumsum(marginal) / marginal.sum()
        lo = int(np.searchsorted(cumulative, tail))
        hi = int(np.searchsorted(cumulative, 1.0 - tail)) + 1
        return min(lo * stride, limit - 1), min(max(hi * stride, lo * stride + 1), limit)

    y0, y1 = span(sal.sum(1), h)
    x0, x1 = span(sal.sum(0), w)
    return [y0, x0, y1, x1]


def subject_box(frames: np.ndarray, box_h: int, box_w: int) -> list[int]:
    """``[y0, x0, y1, x1]`` of the ``box_h x box_w`` window that covers the most :func:`saliency`.

    Ties (e.g. a uniform video) go to the window closest to the frame's centre. Computed on a grid of at
    most ~128 px per side (every ``stride``-th pixel) and mapped back, so a 1080p clip costs what a small one does.
    """
    t, h, w, _ = frames.shape
    stride = max(1, min(h, w) // 128)
    sal = saliency(frames[:, ::stride, ::stride])
    sh, sw = sal.shape
    bh, bw = max(1, min(sh, round(box_h / stride))), max(1, min(sw, round(box_w / stride)))
    integral = np.pad(sal.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[bh:, bw:] - integral[:-bh, bw:] - integral[bh:, :-bw] + integral[:-bh, :-bw]
    ys, xs = np.mgrid[0:sums.shape[0], 0:sums.shape[1]]
    centre_distance = (ys - (sh - bh) / 2) ** 2 + (xs - (sw - bw) / 2) ** 2
    best = np.flatnonzero(sums >= sums.max() - 1e-6 * max(1.0, abs(sums.max())))
    y, x = np.unravel_index(best[np.argmin(centre_distance.ravel()[best])], sums.shape)
    y0 = min(int(y) * stride, h - box_h)
    x0 = min(int(x) * stride, w - box_w)
    return [y0, x0, y0 + box_h, x0 + box_w]


def occlude_frames(frames: np.ndarray, rng: np.random.Generator, *, fraction: Fraction = 1.0,
                   size: str = "subject", subject_area: Fraction = OCCLUDER_SUBJECT_AREA,
                   area: Fraction = OCCLUDER_AREA, aspect: float = 1.0, position: str = "subject",
                   fill: int = OCCLUDER_FILL, box: Fraction | None = None,
                   same_box: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Paint a ``fill`` box over part of the frames; by default RRPO's ``perturb.png`` occluder.

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        rng: the random generator.
        fraction: share of frames occluded (1.0, the default: every frame, as in the figure).
        size: ``subject`` (default): the box's area is ``subject_area`` of the subject's extent
            (:func:`subject_extent`), so parts of the subject stay visible, as in the figure; ``frame``: the
            box's area is ``area`` of the frame (a fixed box that hides a small subject completely).
        subject_area: box area as a share of the subject's extent (0.76, the figure's), fixed or drawn from
            ``[low, high]`` (``size="subject"``).
        area: box area as a share of the frame (0.31, the figure's), fixed or drawn from ``[low, high]``
            (``size="frame"``).
        aspect: box width / height in pixels (1.0: the figure's square).
        position: ``subject`` (over the most salient region, :func:`subject_box`; the figure's box hides the
            subject), ``center`` or ``random``.
        fill: grey level of the box (245, the figure's).
        box: instead of ``area``/``aspect``, the box side as a share of the frame's height and of its width.
        same_box: one box for all occluded frames (a persistent occluder, as in the figure); False draws a
            new random position per frame.
    """
    _check_frames(frames)
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {', '.join(POSITIONS)}, got {position!r}")
    if size not in OCCLUDER_SIZES:
        raise ValueError(f"size must be one of {', '.join(OCCLUDER_SIZES)}, got {size!r}")
    # every parameter is checked whichever branch reads it, so a pipeline is refused when it is configured
    # (occlude:1;area=big with the default size=subject was accepted, area being read only with size=frame)
    for name, value in (("subject_area", subject_area), ("area", area), ("box", box)):
        if value is not None:
            try:
                _draw_fraction(np.random.default_rng(0), value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from None
    if isinstance(aspect, bool) or not isinstance(aspect, (int, float)) or not 0.01 <= float(aspect) <= 100:
        raise ValueError(f"aspect (box width / height) must be a number in [0.01, 100], got {aspect!r}")
    _whole("fill", fill, 0, 255)
    if not isinstance(same_box, bool):
        raise ValueError(f"same_box must be true or false, got {same_box!r}")
    t, h, w, _ = frames.shape
    picked = _pick_frames(rng, t, fraction)
    out = frames.copy()
    extent = None
    if box is not None:
        side = _draw_fraction(rng, box)
        bh, bw = max(1, int(round(side * h))), max(1, int(round(side * w)))
    elif size == "subject":
        extent = subject_extent(frames)
        share = _draw_fraction(rng, subject_area)
        if not 0.0 < share <= 1.0:
            raise ValueError(f"subject_area must be in (0, 1], got {share!r}")
        pixels = share * (extent[2] - extent[0]) * (extent[3] - extent[1])
        bh, bw = box_size(h, w, min(1.0, pixels / (h * w)), float(aspect))
    else:
        bh, bw = box_size(h, w, _draw_fraction(rng, area), float(aspect))

    def place(where: str) -> list[int]:
        if where == "subject":
            return subject_box(frames, bh, bw)
        if where == "center":
            y0, x0 = (h - bh) // 2, (w - bw) // 2
        else:
            y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        return [y0, x0, y0 + bh, x0 + bw]

    boxes = []
    shared = place(position) if same_box else None
    for i in picked:
        y0, x0, y1, x1 = shared if shared is not None else place("random")
        out[i, y0:y1, x0:x1] = np.uint8(fill)
        boxes.append([y0, x0, y1, x1])
    info: dict[str, Any] = {"name": "occlude", "frames": picked.tolist(), "fill": int(fill),
                            "position": position if same_box else "random", "size": size if box is None else "box"}
    if extent is not None:
        info["subject"] = extent  # [y0, x0, y1, x1] the box's size was taken relative to
    info["box"] = shared if shared is not None else boxes  # [y0, x0, y1, x1] in pixels
    return out, info


def shuffle_frames(frames: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Permute the frames at random; the permutation is never the identity when ``T > 1``.

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        rng: the random generator.
    """
    _check_frames(frames)
    t = frames.shape[0]
    order = np.arange(t)
    if t > 1:
        while True:  # an identity "shuffle" would silently leave the video unperturbed
            order = rng.permutation(t)
            if not np.array_equal(order, np.arange(t)):
                break
    return frames[order].copy(), {"name": "shuffle", "order": order.tolist()}


def reverse_frames(frames: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Reverse the frame order (``rng`` is accepted for a uniform signature and not used)."""
    _check_frames(frames)
    return frames[::-1].copy(), {"name": "reverse"}


def drop_frames(frames: np.ndarray, rng: np.random.Generator, *,
                fraction: Fraction = (0.25, 0.5)) -> tuple[np.ndarray, dict[str, Any]]:
    """Drop a random ``fraction`` of the frames, holding the last kept frame in their place.

    The first frame is never dropped (something must be held). ``T`` is unchanged.

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        rng: the random generator.
        fraction: share of frames dropped, fixed or drawn from ``[low, high]``.
    """
    _check_frames(frames)
    t = frames.shape[0]
    if t == 1:
        return frames.copy(), {"name": "drop", "frames": []}
    picked = _pick_frames(rng, t - 1, fraction) + 1
    source = np.arange(t)
    dropped = np.zeros(t, dtype=bool)
    dropped[picked] = True
    for i in range(1, t):
        if dropped[i]:
            source[i] = source[i - 1]
    return frames[source].copy(), {"name": "drop", "frames": picked.tolist()}


def blur_frames(frames: np.ndarray, rng: np.random.Generator | None = None, *,
                factor: int = 4) -> tuple[np.ndarray, dict[str, Any]]:
    """Pixelate every frame: average ``factor x factor`` blocks and repeat them back to full size.

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        rng: accepted for a uniform signature and not used.
        factor: block side in pixels (>= 1; edges that do not fill a block are averaged on their own).
    """
    _check_frames(frames)
    factor = _whole("blur factor", factor, 1, 4096)
    t, h, w, c = frames.shape
    hp, wp = -(-h // factor) * factor, -(-w // factor) * factor
    # Edge-pad to a multiple of the block size so every block is averaged over real pixels only.
    padded = np.pad(frames.astype(np.float32), ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    blocks = padded.reshape(t, hp // factor, factor, wp // factor, factor, c).mean(axis=(2, 4))
    up = np.repeat(np.repeat(blocks, factor, axis=1), factor, axis=2)[:, :h, :w]
    return np.clip(np.round(up), 0, 255).astype(np.uint8), {"name": "blur", "factor": factor}


#: name -> function(frames, rng, **params) -> (frames, info)
PERTURBATIONS: dict[str, Callable[..., tuple[np.ndarray, dict[str, Any]]]] = {
    "mask": mask_frames,
    "occlude": occlude_frames,
    "shuffle": shuffle_frames,
    "reverse": reverse_frames,
    "drop": drop_frames,
    "blur": blur_frames,
}


#: The most steps a pipeline may have: each perturbation twice (e.g. two occluders of different sizes). A step runs
#: on every draw of every item, and composing more adds no failure pattern RRPO names (two shuffles are one
#: shuffle), only cost: the bound keeps an options file of 200,000 steps (2.4 MB, inside the document caps) from
#: running one item until killed.
MAX_PIPELINE_STEPS = 2 * len(PERTURBATIONS)

#: the forms a perturbation pipeline is written in, for messages
SPEC_FORMS = ("e.g. [occlude, shuffle] or [{name: mask, fraction: 0.5}], or the string 'mask:0.25-0.5,shuffle' "
              "of --perturb")


def normalize_specs(specs: Sequence[dict[str, Any] | str] | str | None,
                    num_frames: int | None = None) -> list[dict[str, Any]]:
    """Validate a perturbation pipeline; return it as a list of ``{"name": ..., **params}`` dicts.

    Args:
        specs: ``None`` (the default: :data:`DEFAULT_PERTURBATIONS`), a command-line string such as
            ``"mask:0.25-0.5,shuffle"`` (see :func:`parse_spec`), or a list of dicts / names.
        num_frames: the frames per clip the pipeline will see, when known: a step that changes no frame of such a
            clip (``shuffle``, ``reverse`` or ``drop`` of one frame) is refused as a fraction of 0 is.

    Raises:
        ValueError: an unknown perturbation or parameter, naming it and listing the known ones; more than
            :data:`MAX_PIPELINE_STEPS` steps; an empty pipeline (``--perturb ,``, ``perturbations=[]``), which
            would leave every video unperturbed and make the "non-preferred" responses answers about the real video;
            for the same reason, a step whose strength changes no frame (a fraction of 0, a blur factor of 1).
    """
    import inspect

    if specs is None:
        specs = DEFAULT_PERTURBATIONS
    if isinstance(specs, str):
        specs = parse_spec(specs)
    if not isinstance(specs, (list, tuple)):
        raise ValueError(f"expected a list of perturbations ({SPEC_FORMS}), got {type(specs).__name__}")
    if not specs:
        raise ValueError(f"no perturbation given: an empty pipeline leaves every video unperturbed, so the "
                         f"non-preferred responses would describe the real video; name at least one ({SPEC_FORMS}), "
                         f"or leave the option out for the default")
    if len(specs) > MAX_PIPELINE_STEPS:
        raise ValueError(f"a pipeline of {len(specs)} steps; at most {MAX_PIPELINE_STEPS} (each of the "
                         f"{len(PERTURBATIONS)} perturbations twice): every step runs on every draw of every item")
    out = []
    for at, spec in enumerate(specs):
        if not isinstance(spec, (str, dict)) or (isinstance(spec, dict) and "name" not in spec):
            got = "a mapping without 'name'" if isinstance(spec, dict) else type(spec).__name__
            raise ValueError(f"element [{at}]: expected a perturbation name or a mapping with a 'name' "
                             f"({SPEC_FORMS}), got {got}")
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        name = spec.get("name")
        if name not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
        allowed = [p for p in inspect.signature(PERTURBATIONS[name]).parameters if p not in ("frames", "rng")]
        for key in spec:
            if key != "name" and key not in allowed:
                raise ValueError(f"perturbation {name!r} has no parameter {key!r} (parameters: "
                                 f"{', '.join(allowed) or 'none'})")
        # Parameter values are checked by the perturbation itself, once, on a blank 4-frame clip: a bad value
        # (``mask:2-3``) fails here, when the pipeline is configured, not on every item of a run.
        params = {k: v for k, v in spec.items() if k != "name"}
        try:
            _, info = PERTURBATIONS[name](np.zeros((4, 8, 8, 3), np.uint8), np.random.default_rng(0), **params)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"perturbation {name!r}: {exc}") from None
        unchanged, fix = _changes_nothing(info), _NO_CHANGE_FIX.get(name)
        if not unchanged and num_frames is not None:
            clip = _distinct_clip(min(num_frames, TRIAL_FRAMES_MAX))
            if np.array_equal(PERTURBATIONS[name](clip, np.random.default_rng(0), **params)[0], clip):
                unchanged = f"on clips of {num_frames} frame{'s' if num_frames != 1 else ''}"
                fix = "decode more frames per video"
        if unchanged:
            raise ValueError(f"perturbation {name!r}: {unchanged} changes no frame, so the non-preferred responses "
                             f"would describe the real video (the reason an empty pipeline is refused); "
                             f"{fix}, or leave the step out")
        out.append(spec)
    return out


#: what to write instead of a step strength that changes no frame (:func:`_changes_nothing`)
_NO_CHANGE_FIX = {**{name: f"give a fraction above 0 (e.g. {name}:0.25)" for name in ("mask", "occlude", "drop")},
                  "blur": "give a factor of at least 2 (e.g. blur:8)"}


#: the most frames the no-change trial builds: a step that reorders, drops or covers frames changes some frame of every
#: clip of 2 frames or more, so a longer trial says nothing more, and ``num_frames`` is not yet checked against the
#: videos when the pipeline is (``model.num_frames=715827882`` must reach that check, not allocate its clip)
TRIAL_FRAMES_MAX = 64


def _distinct_clip(num_frames: int) -> np.ndarray:
    """A small clip of ``num_frames`` frames, each unlike the others, on which a step that reorders, drops or
    covers frames shows whether it changes any (:func:`normalize_specs`)."""
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(8), np.arange(8), indexing="ij")
    frame = np.stack([t % 251, t // 251 % 251, (y * 8 + x) * 3], axis=-1)  # frames differ; pixels within one too
    return (frame + 1).astype(np.uint8)


def _changes_nothing(info: dict[str, Any]) -> str | None:
    """The parameter that makes a step change no frame of any clip, said (``fraction 0``, ``factor 1``), from the
    ``info`` of a trial run: a fraction picks at least one frame whenever it is above 0 (:func:`_pick_frames`; a
    drop picks among the frames after the first), so a step that picked none on the trial clip has a fraction of 0
    (or the range 0-0), and a blur of 1x1 blocks averages each pixel with itself. None otherwise."""
    if info.get("frames") == []:
        return "fraction 0"
    if info["name"] == "blur" and info.get("factor") == 1:
        return "factor 1 (1x1 blocks)"
    return None


def draws_vary(specs: Sequence[dict[str, Any] | str] | str | None, num_frames: int = 8) -> bool:
    """Whether two draws of the pipeline can differ: False for one with no random step (``reverse``, ``blur``, the
    default occluder on every frame), whose every draw perturbs a clip the same way. Tried on a blank ``num_frames``
    clip with 8 random generators: each step's ``info`` says exactly what it did, so equal infos are equal draws."""
    clip = np.zeros((num_frames, 16, 16, 3), np.uint8)
    infos = [apply_perturbations(clip, specs, np.random.default_rng(seed))[1] for seed in range(8)]
    return any(info != infos[0] for info in infos[1:])


def _scalar(raw: str) -> Any:
    """``"0.3"`` -> 0.3, ``"true"`` -> True, anything else stays a string."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw


def parse_spec(text: str) -> list[dict[str, Any]]:
    """Parse ``"mask:0.25-0.5,occlude:1.0,shuffle,blur:8"`` into a pipeline.

    The value after ``:`` is the main parameter: ``fraction`` (a number or ``low-high``) for mask,
    occlude and drop; ``factor`` for blur. Shuffle and reverse take none. Other parameters are set with
    ``name=value`` after the main one, separated by ``;``: ``occlude:1;area=0.25;position=center``.
    """
    out: list[dict[str, Any]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        head, *extras = part.split(";")  # blur:8;x=1 and blur;factor=8 alike
        name, _, value = head.partition(":")
        name = name.strip()
        spec: dict[str, Any] = {"name": name}
        for extra in extras:
            key, sep, raw = extra.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"perturbation parameter must be name=value, got {extra!r} in {part!r}")
            if key.strip() in spec:
                raise ValueError(f"perturbation {name!r}: {key.strip()} is set twice in {part!r}")
            spec[key.strip()] = _scalar(raw.strip())
        value = value.strip()
        if value:
            main = _main_value(name, value, part)
            if main.keys() & spec.keys():
                key = next(iter(main.keys() & spec.keys()))
                raise ValueError(f"perturbation {name!r}: {key} is set twice in {part!r} (the value after ':' is "
                                 f"the {key})")
            spec.update(main)
        out.append(spec)
    return out


#: the parameter the value after ``name:`` sets, and what it is (for :func:`parse_spec` and its messages)
_MAIN = {"blur": ("factor", "an integer, e.g. blur:8"),
         **{name: ("fraction", f"a number or low-high, e.g. {name}:0.5 or {name}:0.25-0.5")
            for name in ("mask", "occlude", "drop")}}


def _main_value(name: str, value: str, part: str) -> dict[str, Any]:
    """``{param: value}`` from the text after ``name:`` in a spec string; a one-line ``ValueError`` naming the
    perturbation, the parameter and what it takes."""
    if name not in _MAIN:
        raise ValueError(f"perturbation {name!r} takes no value after ':' (got {part!r})")
    param, takes = _MAIN[name]
    if "=" in value:  # occlude:size=frame -- a named parameter where the main value goes
        example = "8" if param == "factor" else "1"
        raise ValueError(f"perturbation {name!r}: {value!r} sets a parameter; named parameters follow the {param} "
                         f"and ';' (e.g. {name}:{example};{value})")
    try:
        if param == "factor":
            return {param: int(value)}
        if "_" in value:  # Python's float() reads 0.2_5 as 0.25; a recipe's YAML refuses digit grouping
            raise ValueError
        try:  # one number (exponents included: 1e-3 is not the range 1e..3)
            return {param: float(value)}
        except ValueError:
            pass
        cut = next(i for i, ch in enumerate(value) if ch == "-" and i > 0 and value[i - 1] not in "eE")
        return {param: [float(value[:cut]), float(value[cut + 1:])]}
    except (StopIteration, ValueError):  # StopIteration: no range dash, and not one number either
        raise ValueError(f"perturbation {name!r}: {param} (the value after ':') must be {takes}, got {value!r}") \
            from None


def apply_perturbations(frames: np.ndarray, specs: Sequence[dict[str, Any] | str] | str | None,
                        rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Apply a pipeline of perturbations in order; return the frames and one ``info`` dict per step.

    Args:
        frames: uint8 ``(T, H, W, 3)`` (not modified).
        specs: the pipeline (see :func:`normalize_specs`).
        rng: the random generator all steps draw from, in order.
    """
    applied = []
    for spec in normalize_specs(specs):
        params = {k: v for k, v in spec.items() if k != "name"}
        frames, info = PERTURBATIONS[spec["name"]](frames, rng, **params)
        applied.append(info)
    return frames, applied


#: most steps a stored pipeline may replay (every perturbation keeps the frame count, and a pipeline the generator
#: runs has one step per perturbation asked for: a handful)
MAX_REPLAY_STEPS = 64


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _indices_problem(value: Any, count: int, key: str) -> str | None:
    """Why ``value`` is not a list of distinct frame indices in ``[0, count)``, or None."""
    if not isinstance(value, list):
        return f"{key} is a {type(value).__name__}, not a list of frame indices"
    if len(value) > count:
        return f"{key} lists {len(value)} frames"
    if not all(_is_int(i) and 0 <= i < count for i in value):
        bad = next(i for i in value if not (_is_int(i) and 0 <= i < count))
        return f"{key} holds {bad!r}, not a frame index in 0..{count - 1}"
    if len(set(value)) != len(value):
        return f"{key} names a frame twice"
    return None


def _box_problem(box: Any, height: int, width: int) -> str | None:
    if not (isinstance(box, list) and len(box) == 4 and all(_is_int(v) for v in box)):
        return f"box {box!r} is not [y0, x0, y1, x1] in whole pixels"
    y0, x0, y1, x1 = box
    if not (0 <= y0 <= y1 <= height and 0 <= x0 <= x1 <= width):
        return f"box {box!r} is not inside the frame"
    return None


def replay_problem(applied: Any, num_frames: int, height: int, width: int) -> str | None:
    """Why the stored pipeline ``applied`` (a record's ``meta.perturbation``) cannot be replayed on ``num_frames``
    frames of ``height x width`` pixels, or None when it can -- checked before any frame is built, so a record
    holds no power over memory: at most :data:`MAX_REPLAY_STEPS` steps, a shuffle ``order`` exactly a
    permutation of the frames, mask/occlude/drop ``frames`` distinct indices in range, boxes inside the frame,
    ``fill`` a byte value and a blur ``factor`` at most the frame's side. Every perturbation keeps the count.
    """
    where = f"does not fit {num_frames} frames of {height}x{width}"
    if not isinstance(applied, list):
        return f"perturbation: its record {where} (a {type(applied).__name__}, not a list of steps)"
    if len(applied) > MAX_REPLAY_STEPS:
        return f"perturbation: its record {where} ({len(applied)} steps, more than {MAX_REPLAY_STEPS})"
    for step, info in enumerate(applied):
        if not isinstance(info, dict):
            return f"perturbation step {step}: its record {where} (a {type(info).__name__}, not an object)"
        name = info.get("name")
        if not isinstance(name, str) or name not in PERTURBATIONS:
            return f"unknown perturbation {name!r}"
        problem = None
        if name in ("mask", "occlude", "drop"):
            problem = _indices_problem(info.get("frames"), num_frames, "frames")
        if problem is None and name in ("mask", "occlude") and not (_is_int(info.get("fill"))
                                                                    and 0 <= info["fill"] <= 255):
            problem = f"fill {info.get('fill')!r} is not a byte value 0..255"
        if problem is None and name == "occlude":
            boxes = info.get("box")
            shared = isinstance(boxes, list) and not (boxes and isinstance(boxes[0], list))
            if shared:
                problem = _box_problem(boxes, height, width) if info["frames"] else None
            elif not isinstance(boxes, list) or len(boxes) != len(info["frames"]):
                problem = "box is neither one [y0, x0, y1, x1] nor one per occluded frame"
            else:
                problem = next((p for p in (_box_problem(b, height, width) for b in boxes) if p), None)
        elif name == "shuffle":
            order = info.get("order")
            if not isinstance(order, list) or len(order) != num_frames:
                size = len(order) if isinstance(order, list) else type(order).__name__
                problem = f"order ({size}) is not a permutation of the {num_frames} frames"
            elif not all(_is_int(i) for i in order) or sorted(order) != list(range(num_frames)):
                problem = f"order is not a permutation of 0..{num_frames - 1}"
        elif name == "blur" and not (_is_int(info.get("factor")) and 1 <= info["factor"] <= max(height, width)):
            problem = f"factor {info.get('factor')!r} is not a whole number of pixels in 1..{max(height, width)}"
        if problem is not None:
            return f"perturbation {name!r}: its record {where} ({problem})"
    return None


def replay_perturbations(frames: np.ndarray, applied: Sequence[dict[str, Any]]) -> np.ndarray:
    """The frames a pipeline produced, rebuilt from the ``info`` dicts :func:`apply_perturbations` returned (and
    the RRPO generator stores in a record's ``meta.perturbation``), without its random generator.

    ``replay_perturbations(frames, apply_perturbations(frames, specs, rng)[1])`` equals the perturbed frames.

    Raises:
        ValueError: an ``info`` of an unknown perturbation, or one that does not fit ``frames``
            (:func:`replay_problem`).
    """
    _check_frames(frames)
    problem = replay_problem(applied, *frames.shape[:3])  # before any frame is built
    if problem is not None:
        raise ValueError(problem)
    out = frames.copy()
    for info in applied:
        name = info.get("name")
        try:
            if name == "mask":
                out[list(info["frames"])] = np.uint8(info["fill"])
            elif name == "occlude":
                boxes = info["box"]
                shared = boxes and not isinstance(boxes[0], list)
                for n, i in enumerate(info["frames"]):
                    y0, x0, y1, x1 = boxes if shared else boxes[n]
                    out[i, y0:y1, x0:x1] = np.uint8(info["fill"])
            elif name == "shuffle":
                out = out[list(info["order"])]
            elif name == "reverse":
                out = out[::-1].copy()
            elif name == "drop":
                source, dropped = np.arange(out.shape[0]), set(info["frames"])
                for i in range(1, out.shape[0]):
                    source[i] = source[i - 1] if i in dropped else i
                out = out[source]
            elif name == "blur":
                out = blur_frames(out, None, factor=int(info["factor"]))[0]
            else:
                raise ValueError(f"unknown perturbation {name!r}")
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"perturbation {name!r}: its record does not fit {frames.shape[0]} frames "
                             f"of {frames.shape[1]}x{frames.shape[2]} ({type(exc).__name__}: {exc})") from None
    return out
