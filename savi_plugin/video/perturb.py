"""Video perturbations that provoke a model's typical failures (RRPO's non-preferred responses).

RRPO (Sarkar et al., arXiv 2504.12083, section 3 and ``docs/assets/perturb.png`` of pritamqu/RRPO) asks
the model about a *perturbed* video so that its wrong answers show the failure patterns worth
penalising: weak spatio-temporal understanding, spurious correlations between co-occurring concepts,
and over-reliance on language priors. The paper's figure shows a grey box occluding the subject plus
shuffled frames; a summary of the paper describes "frame masking of 25-50% of frames + temporal
shuffling". The paper releases no perturbation code, so these are our implementations:

- :func:`mask_frames`: replace 25-50% of the frames with a flat grey frame (information removed in
  time: the model must guess the missing events, falling back on language priors);
- :func:`occlude_frames`: a grey box over part of 25-50% of the frames (or all), hiding the subject
  (spatial evidence removed: co-occurring context is all that is left, so spurious correlations show);
- :func:`shuffle_frames`: a random temporal permutation (order, direction and cause/effect destroyed);
- :func:`reverse_frames`: play the clip backwards (the arrow of time flips: "opens" looks like
  "closes", "left" like "right", the open<->close error of RRPO's ``data.png``);
- :func:`drop_frames`: remove 25-50% of the frames and hold the previous frame instead (a stutter: short
  events vanish, counts and orders break, but every remaining frame is clean);
- :func:`blur_frames`: pixelate every frame by block averaging (fine spatial detail such as small objects
  and attributes is lost; coarse layout survives).

All functions are pure: they take a uint8 array ``(T, H, W, 3)`` and a ``numpy.random.Generator``, never
modify their input, keep ``T`` (processors and the frame count in the record's metadata stay valid) and
return ``(new_frames, info)`` where ``info`` is a JSON-able description of exactly what was done, for the
record's ``meta.perturbation``. The same generator state gives the same result.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

Fraction = float | Sequence[float]

#: The default RRPO recipe: mask 25-50% of the frames, then shuffle the order.
DEFAULT_PERTURBATIONS: tuple[dict[str, Any], ...] = (
    {"name": "mask", "fraction": [0.25, 0.5]},
    {"name": "shuffle"},
)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        raise ValueError(f"frames must be a numpy array (T, H, W, 3), got shape {shape}")
    if frames.shape[0] == 0:
        raise ValueError("frames must contain at least one frame")


def _draw_fraction(rng: np.random.Generator, fraction: Fraction) -> float:
    """A fraction in ``[lo, hi]`` drawn uniformly (or the fixed value); checked to lie in [0, 1]."""
    if isinstance(fraction, (int, float)):
        lo = hi = float(fraction)
    else:
        values = [float(v) for v in fraction]
        if len(values) != 2:
            raise ValueError(f"fraction must be a number or a [low, high] pair, got {fraction!r}")
        lo, hi = values
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
    out[picked] = np.uint8(fill)
    return out, {"name": "mask", "frames": picked.tolist(), "fill": int(fill)}


def occlude_frames(frames: np.ndarray, rng: np.random.Generator, *, fraction: Fraction = (0.25, 0.5),
                   box: Fraction = (0.3, 0.6), fill: int = 128,
                   same_box: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Paint a ``fill`` box over part of a random ``fraction`` of the frames.

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        rng: the random generator.
        fraction: share of frames occluded (1.0: every frame, as in RRPO's figure).
        box: side of the box as a share of the frame's height and width, fixed or drawn from a range.
        fill: grey level of the box.
        same_box: one box position for all occluded frames (a persistent occluder that hides the subject,
            as in the figure); False draws a new position per frame.
    """
    _check_frames(frames)
    t, h, w, _ = frames.shape
    picked = _pick_frames(rng, t, fraction)
    out = frames.copy()

    def draw_box() -> list[int]:
        side = _draw_fraction(rng, box)
        bh, bw = max(1, int(round(side * h))), max(1, int(round(side * w)))
        y0 = int(rng.integers(0, h - bh + 1))
        x0 = int(rng.integers(0, w - bw + 1))
        return [y0, x0, y0 + bh, x0 + bw]

    boxes = []
    shared = draw_box() if same_box else None
    for i in picked:
        y0, x0, y1, x1 = shared if shared is not None else draw_box()
        out[i, y0:y1, x0:x1] = np.uint8(fill)
        boxes.append([y0, x0, y1, x1])
    info: dict[str, Any] = {"name": "occlude", "frames": picked.tolist(), "fill": int(fill)}
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
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"blur factor must be >= 1, got {factor}")
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


def normalize_specs(specs: Sequence[dict[str, Any] | str] | str | None) -> list[dict[str, Any]]:
    """Validate a perturbation pipeline; return it as a list of ``{"name": ..., **params}`` dicts.

    Args:
        specs: ``None`` (the default: :data:`DEFAULT_PERTURBATIONS`), a command-line string such as
            ``"mask:0.25-0.5,shuffle"`` (see :func:`parse_spec`), or a list of dicts / names.

    Raises:
        ValueError: an unknown perturbation or parameter, naming it and listing the known ones.
    """
    import inspect

    if specs is None:
        specs = DEFAULT_PERTURBATIONS
    if isinstance(specs, str):
        specs = parse_spec(specs)
    out = []
    for spec in specs:
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        name = spec.get("name")
        if name not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
        allowed = [p for p in inspect.signature(PERTURBATIONS[name]).parameters if p not in ("frames", "rng")]
        for key in spec:
            if key != "name" and key not in allowed:
                raise ValueError(f"perturbation {name!r} has no parameter {key!r} (parameters: "
                                 f"{', '.join(allowed) or 'none'})")
        out.append(spec)
    return out


def parse_spec(text: str) -> list[dict[str, Any]]:
    """Parse ``"mask:0.25-0.5,occlude:1.0,shuffle,blur:8"`` into a pipeline.

    The value after ``:`` is the main parameter: ``fraction`` (a number or ``low-high``) for mask,
    occlude and drop; ``factor`` for blur. Shuffle and reverse take none.
    """
    out: list[dict[str, Any]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition(":")
        name = name.strip()
        spec: dict[str, Any] = {"name": name}
        if value:
            if name == "blur":
                spec["factor"] = int(value)
            elif name in ("mask", "occlude", "drop"):
                lo, sep, hi = value.partition("-")
                spec["fraction"] = [float(lo), float(hi)] if sep else float(lo)
            else:
                raise ValueError(f"perturbation {name!r} takes no value (got {part!r})")
        out.append(spec)
    return out


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
