"""Builders shared by the tests (torchtune's ``tests/test_utils.py``): the repository's paths, JSONL and
preference-pair files, trainer configs, LoRA policies, and the reference computations tests check against.

Session-scoped tiny models, the converted LLaVA-Video and the synthetic videos are fixtures in ``tests/conftest.py``;
this module holds the plain functions that several test files call.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
LLAVA_NEXT_FIXTURE = FIXTURES / "llava_next"
RECIPES = REPO_ROOT / "recipes"


#: lmms-eval's command line, run by the interpreter that runs the tests (``python -m lmms_eval`` is what its
#: ``lmms-eval`` console script calls), so a test evaluates in this environment whether or not its ``bin`` is on PATH
LMMS_EVAL = (sys.executable, "-m", "lmms_eval")


def console_script(name: str) -> str:
    """The console script ``name`` that pip installed for the running interpreter (its scripts folder): a
    fresh venv's ``bin`` or the system Python's, whichever runs the tests, never another one found on PATH."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no console script {name!r} beside {sys.executable} (pip install -e .)")
    return str(path)


def _decord_installed() -> bool:
    from savi_plugin.video.decode import decord_installed

    return decord_installed()


#: skips a test that needs decord, the optional ``decord`` extra (PyAV is the default decoder)
needs_decord = pytest.mark.skipif(not _decord_installed(),
                                  reason="decord is the optional extra: pip install -e '.[decord]'")
#: the video decoders to parametrize a test over: PyAV always, decord when its extra is installed
VIDEO_BACKENDS = ("pyav", pytest.param("decord", marks=needs_decord))


def repo_pythonpath() -> str:
    """``PYTHONPATH`` for a child process that imports ``savi_plugin`` and ``tests`` from this checkout."""
    return os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))


def free_port() -> int:
    """A free local TCP port (for a child's ``MASTER_PORT``)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llava_next_frames(seed: int = 1234):
    """A 2-frame 240x320 RGB video; seed 1234 is the one LLaVA-NeXT's recorded reference was computed on."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, size=(2, 240, 320, 3), dtype=np.uint8)


def llava_next_reference() -> tuple[dict, dict]:
    """The tensors and metadata recorded with LLaVA-NeXT's own code (``tests/fixtures/llava_next/``)."""
    from safetensors import safe_open

    with safe_open(str(LLAVA_NEXT_FIXTURE / "reference.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """``records`` as one JSON object a line (its folder is made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file, blank lines skipped."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


#: ``write_answer_pairs`` templates whose chosen and rejected differ in length and wording around the option.
UNEVEN_PAIR = {"chosen": "The answer is {}.", "rejected": "It is {}, I think, clearly."}


def answer_pair(sample, wrong: str, *, chosen: str = "The answer is {}.", rejected: str = "The answer is {}.",
                tagged: bool = True) -> dict:
    """A preference record on a synthetic sample: ``chosen`` names the true option, ``rejected`` the ``wrong`` one.

    ``chosen`` / ``rejected`` are templates whose ``{}`` is the option; the tagged texts put ``<MASK>`` around it.
    """
    record = {"id": sample.id, "video": sample.video, "question": sample.question,
              "chosen": chosen.format(sample.answer), "rejected": rejected.format(wrong)}
    if tagged:
        record["chosen_tagged"] = chosen.format(f"<MASK>{sample.answer}</MASK>")
        record["rejected_tagged"] = rejected.format(f"<MASK>{wrong}</MASK>")
    return record


def wrong_option(sample, i: int, rotate: bool = True) -> str:
    """A wrong option of ``sample``: the ``i % 3``-th one (``rotate``), else the first."""
    wrong = [o for o in sample.options if o != sample.answer]
    return wrong[i % 3] if rotate else wrong[0]


def write_answer_pairs(path: Path, samples, *, rotate: bool = True, **templates) -> Path:
    """Preference pairs on synthetic samples, one a line: chosen = "The answer is <truth>.", rejected = the same
    sentence with a wrong option (see ``answer_pair`` for the templates and ``wrong_option`` for ``rotate``)."""
    return write_jsonl(path, [answer_pair(s, wrong_option(s, i, rotate), **templates) for i, s in enumerate(samples)])


def outside_tokens(tagged: str) -> list[str]:
    """The lower-cased word tokens of a ``<MASK>``-tagged response outside its tagged phrases."""
    from savi_plugin.data.tags import parse_tags
    from savi_plugin.generators.text import tokens_with_spans

    parsed = parse_tags(tagged)
    pieces, cursor = [], 0
    for start, end in parsed.spans:
        pieces.append(parsed.text[cursor:start])
        cursor = end
    pieces.append(parsed.text[cursor:])
    return [t.lower() for t, _, _ in tokens_with_spans(" ".join(pieces))]


def full_logits_logprobs(backend, videos, questions, responses) -> list:
    """Per-token log-probs of each response from the model's own forward and full logits (log-softmax over the
    whole vocabulary, then gather): the textbook computation the scoring path is checked against."""
    import torch

    from savi_plugin.training.batch import labelled_inputs

    inputs, labels = labelled_inputs(backend, videos, questions, responses)
    with torch.no_grad():
        logits = backend.model(**inputs).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp(min=0)[..., None]).squeeze(-1)
    return [logprobs[b][labels[b, 1:] != -100] for b in range(labels.shape[0])]


def preference_config(output_dir: Path, **overrides):
    """A ``PreferenceConfig`` for a CPU run on the tiny model: 4 frames, fp32, no saving, no progress bars."""
    from savi_plugin.training.config import PreferenceConfig

    options = dict(output_dir=str(output_dir), num_frames=4, per_device_train_batch_size=4,
                   per_device_eval_batch_size=4, gradient_accumulation_steps=2, learning_rate=3e-3,
                   lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no",
                   use_cpu=True, seed=0, disable_tqdm=True)
    options.update(overrides)
    return PreferenceConfig(**options)


def lora_policy(model_path, *, r: int = 8, alpha: int = 16, dropout: float = 0.0, seed: int = 0):
    """The tiny model at ``model_path`` (4 frames) with a fresh LoRA adapter applied the way ``savi train`` does."""
    from savi_plugin.models import load_backend
    from savi_plugin.training.run import apply_lora

    backend = load_backend(model_path, num_frames=4)
    apply_lora(backend, {"r": r, "alpha": alpha, "dropout": dropout}, seed=seed)
    return backend


def random_lora_backend(model_path, *, r: int = 4, alpha: int = 8, seed: int = 0, **load_options):
    """The tiny model with a random (non-zero) peft LoRA adapter, so policy and its disabled-adapter reference
    differ; in eval mode."""
    import torch
    from peft import LoraConfig, get_peft_model

    from savi_plugin.models import load_backend

    backend = load_backend(model_path, num_frames=4, **load_options)
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, init_lora_weights=False, target_modules=backend.lora_target_modules())
    backend.model = get_peft_model(backend.model, config).eval()
    return backend


def mvbench_fixture_doc(folder: Path) -> dict:
    """One MVBench document as a ``savi_`` task hands it to ``savi_video`` (``savi eval fixture``'s first
    action_antonym record with its resolved video, 4 frames), without a protocol: callers add ``savi_protocol``."""
    from savi_plugin.eval.fixtures import build_fixture

    fx = build_fixture(folder / "data", "mvbench", 1, subtasks=("action_antonym",))
    record = fx.records["savi_mvbench_action_antonym"][0]
    video = str(next((folder / "data" / "mvbench" / "video").rglob(record["video"])))
    return {**record, "savi_video": video, "savi_video_found": True, "savi_num_frames": 4, "savi_benchmark": "mvbench"}


def phrase_batch(chosen_phrase_ids, rejected_phrase_ids, weights=None):
    """A :class:`~savi_plugin.training.batch.PreferenceBatch` carrying only what an ``Objective`` reads from the
    batch (phrase ids and weights), for loss tests on given scores."""
    from savi_plugin.training.batch import PreferenceBatch, ResponseSide

    return PreferenceBatch(None, {"chosen": ResponseSide(None, None, None, chosen_phrase_ids),
                                  "rejected": ResponseSide(None, None, None, rejected_phrase_ids)}, weights=weights)


def random_lora_adapter(model_path, out_dir, *, seed: int = 0) -> Path:
    """A saved random (non-zero) LoRA adapter for the tiny model at ``model_path``: an "aligned" model whose
    answers differ from the base model's."""
    backend = random_lora_backend(model_path, seed=seed)
    backend.model.save_pretrained(str(out_dir))
    return Path(out_dir)


def trained_adapter(model_path, out_dir, *, seed: int = 0) -> Path:
    """:func:`random_lora_adapter` with the record ``savi train`` writes beside it (``savi_adapter.json``: the
    identity of its base, ``model_path``)."""
    from savi_plugin.data.identity import write_adapter_identity

    adapter = random_lora_adapter(model_path, out_dir, seed=seed)
    write_adapter_identity(adapter, model_path, None)
    return adapter


#: ways an adapter folder's file is damaged: (the file, how); :func:`damaged_adapter` applies one
ADAPTER_DAMAGES = {
    "torn record": ("savi_adapter.json", '{"written_by": '),
    "record not an object": ("savi_adapter.json", "[]"),
    "record without its base": ("savi_adapter.json", '{"backend": null}'),
    "torn peft config": ("adapter_config.json", '{"peft_type": '),
    "truncated weights": ("adapter_model.safetensors", 1000),
    "weights short of their end": ("adapter_model.safetensors", -10),
    "no weights": ("adapter_model.safetensors", None),
    # 200 bytes of 0xFF in the last tensor's data, the header intact: float32 NaNs (red team pass 13, B8)
    "nan weights": ("adapter_model.safetensors", (-400, b"\xff" * 200)),
}


def damaged_adapter(adapter, out_dir, damage: str) -> tuple[Path, Path]:
    """A copy of ``adapter`` in ``out_dir`` with one file damaged as :data:`ADAPTER_DAMAGES` says: a text written
    over it, a size it is cut to (negative: bytes cut off its end), ``(offset from the end, bytes)`` written over
    its bytes there, or None: removed. Returns the copy and the file."""
    name, how = ADAPTER_DAMAGES[damage]
    shutil.copytree(adapter, out_dir)
    path = Path(out_dir) / name
    if how is None:
        path.unlink()
    elif isinstance(how, tuple):
        with open(path, "r+b") as fh:
            fh.seek(path.stat().st_size + how[0])
            fh.write(how[1])
    elif isinstance(how, str):
        path.write_text(how)
    else:
        os.truncate(path, how if how > 0 else path.stat().st_size + how)
    return Path(out_dir), path


#: A third party's benchmark module: a BenchmarkSpec for records {id, clip, question, choices, answer} and our
#: default protocol; its task YAMLs sit in ``tasks/`` next to it.
THIRD_PARTY_BENCHMARK = '''
from pathlib import Path

from savi_plugin.api import PROTOCOLS, Benchmark, BenchmarkSpec

BENCHMARK = Benchmark(
    BenchmarkSpec(name="toybench", hub_cache_dir="toybench", local_video_dir="",
                  fields=("id", "clip", "question", "choices", "answer"),
                  video_relpaths=lambda doc, subtask=None: [f"clips/{doc['clip']}"],
                  options=lambda doc: list(doc["choices"]), target=lambda doc: int(doc["answer"]),
                  record_id=lambda doc: str(doc["id"]), video_field="clip"),
    protocols={"savi": PROTOCOLS["perceptiontest"]["savi"]},
    tasks=Path(__file__).parent / "tasks",
)
'''
THIRD_PARTY_TASK = """task: toybench_qa
class: !function savi_plugin.eval.task.SaviVideoTask
dataset_path: example-org/toybench
dataset_name: qa
test_split: test
output_type: generate_until
doc_to_visual: !function savi_plugin.eval.task.doc_to_visual
doc_to_text: !function savi_plugin.eval.task.doc_to_text
doc_to_target: !function savi_plugin.eval.task.doc_to_target
process_results: !function savi_plugin.eval.task.process_results
generation_kwargs: {max_new_tokens: 8, do_sample: false}
metric_list:
  - {metric: accuracy, aggregation: !function savi_plugin.eval.task.aggregate_accuracy, higher_is_better: true}
  - {metric: unparsed, aggregation: !function savi_plugin.eval.task.aggregate_count, higher_is_better: false}
metadata: {benchmark: toybench, version: 1}
"""


def third_party_benchmark(site: Path, data_root: Path, records: list[dict], videos: list[Path]) -> Path:
    """Install a throw-away distribution ``toybench`` that adds a benchmark through the ``savi_plugin.benchmarks``
    entry point (a package folder plus a dist-info with entry_points.txt in ``site``, a folder for ``sys.path`` /
    ``PYTHONPATH``), and its data under ``data_root/toybench``. Returns ``site``."""
    import shutil

    install_distribution(site, None, "toybench",
                         {"toybench/__init__.py": THIRD_PARTY_BENCHMARK, "toybench/tasks/toybench_qa.yaml": THIRD_PARTY_TASK},
                         {"savi_plugin.benchmarks": {"toybench": "toybench:BENCHMARK"}})
    (data_root / "toybench" / "clips").mkdir(parents=True)
    for video in videos:
        shutil.copy(video, data_root / "toybench" / "clips" / video.name)
    write_jsonl(data_root / "toybench" / "qa" / "test.jsonl", records)
    return site


def official_token_case(case: dict):
    """A case of ``tests/fixtures/dpa_ddpo_official.json`` as the token-level loss inputs our losses take.

    Returns a dict of ``[B, T]`` float64 tensors (padding 0): ``policy_chosen``, ``policy_rejected``,
    ``reference_chosen``, ``reference_rejected`` (the policy's rejected logits + 0.3, as the recording did),
    ``chosen_kl`` (KL(ref || policy) per chosen token), ``chosen_phrase_ids``, ``rejected_phrase_ids``,
    ``chosen_mask``, ``rejected_mask``. Position ``t - 1``'s logits score label ``t``.
    """
    import torch
    import torch.nn.functional as F

    from savi_plugin.training.token_logprobs import token_kl

    policy = torch.tensor(case["policy_logits"], dtype=torch.float64)
    reference_chosen = torch.tensor(case["reference_chosen_logits"], dtype=torch.float64)
    pairs = len(case["labels"])
    out = {}
    for side, labels_key, signs_key, rows in (("chosen", "labels", "pos_signs", slice(0, pairs)),
                                              ("rejected", "neg_labels", "neg_signs", slice(pairs, 2 * pairs))):
        labels = torch.tensor(case[labels_key])
        signs = torch.tensor(case[signs_key])
        length = labels.shape[1]
        logits = policy[rows, :length]
        ref_logits = reference_chosen if side == "chosen" else logits + 0.3
        logps, ref_logps = F.log_softmax(logits[:, :-1], -1), F.log_softmax(ref_logits[:, :-1], -1)
        targets, ids = labels[:, 1:], signs[:, 1:]
        width = int((targets != -100).sum(-1).max())
        rows_out = {k: torch.zeros(pairs, width, dtype=torch.float64) for k in ("policy", "reference", "kl")}
        phrase = torch.zeros(pairs, width, dtype=torch.long)
        mask = torch.zeros(pairs, width, dtype=torch.bool)
        for b in range(pairs):
            where = (targets[b] != -100).nonzero().flatten()
            n = len(where)
            gather = targets[b, where].unsqueeze(-1)
            rows_out["policy"][b, :n] = logps[b, where].gather(-1, gather).squeeze(-1)
            rows_out["reference"][b, :n] = ref_logps[b, where].gather(-1, gather).squeeze(-1)
            rows_out["kl"][b, :n] = token_kl(ref_logps[b, where], logps[b, where])
            phrase[b, :n], mask[b, :n] = ids[b, where], True
        out.update({f"policy_{side}": rows_out["policy"], f"reference_{side}": rows_out["reference"],
                    f"{side}_phrase_ids": phrase, f"{side}_mask": mask})
        if side == "chosen":
            out["chosen_kl"] = rows_out["kl"]
    return out


def install_distribution(root: Path, monkeypatch, name: str, files: dict[str, str],
                         entry_points: dict[str, dict[str, str]]) -> Path:
    """A throw-away distribution ``name`` on ``sys.path``: its ``files`` (relative path -> text) and a
    ``<name>-0.1.dist-info`` declaring ``entry_points`` (group -> {entry name: ``module:object``}), as pip would
    install it; ``importlib.metadata`` then finds its entry points. Returns the folder put on ``sys.path``
    (``monkeypatch`` None: only written, for a subprocess's ``PYTHONPATH``)."""
    import sys
    import textwrap

    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()) for group, entries in entry_points.items()))
    if monkeypatch is None:
        return root
    monkeypatch.syspath_prepend(str(root))
    for module in {rel.split("/")[0].removesuffix(".py") for rel in files if rel.endswith(".py")}:
        for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
    return root


def tiny_rrpo_files(folder: Path, model_path, samples, **train) -> tuple[Path, dict]:
    """``folder/pairs.jsonl`` of tagged answer pairs of ``samples`` (one pair each: ``The answer is
    <MASK>answer</MASK>.`` vs ``It is <MASK>none of them</MASK>.``) and a tiny RRPO recipe for them (``train``
    overrides its ``train`` section)."""
    records = [{"id": f"p{i}", "video": s.video, "question": s.question, "chosen": f"The answer is {s.answer}.",
                "rejected": "It is none of them.", "chosen_tagged": f"The answer is <MASK>{s.answer}</MASK>.",
                "rejected_tagged": "It is <MASK>none of them</MASK>."} for i, s in enumerate(samples)]
    return write_jsonl(folder / "pairs.jsonl", records), {
        "model": {"path": str(model_path), "num_frames": 4}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"loss_type": "rrpo", "learning_rate": 1.0e-3, "max_steps": 3, "per_device_train_batch_size": 1,
                  "use_cpu": True, "logging_steps": 1, "disable_tqdm": True, "seed": 0, "save_strategy": "no",
                  **train}}


def tiny_rrpo_run(folder: Path, model_path, samples, **train) -> Path:
    """A real tiny ``savi train`` RRPO run in ``folder/out`` on :func:`tiny_rrpo_files`. Returns ``folder``."""
    import yaml

    from savi_plugin.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    _, recipe = tiny_rrpo_files(folder, model_path, samples, **train)
    (folder / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(folder / "r.yaml"), "--data", str(folder / "pairs.jsonl"),
                 "--output-dir", str(folder / "out")]) == 0
    return folder


#: Debian's headless Chromium, for the tests that render pages (None: not installed; those tests skip)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(profile: Path, *args: str, timeout: int = 120):
    """Run headless Chromium with its own profile folder ``profile`` and no network (``--dump-dom URL``,
    ``--screenshot=PNG URL``); returns the completed process."""
    import subprocess

    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)
