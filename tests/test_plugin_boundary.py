"""The one boundary between savi and a plugin's code (savi_plugin/plugin_call.py), proven from outside: a
throw-away distribution registers a loss, a trainer, a generator and a backend that each break their contract
one way (raise, return the wrong type or shape, no gradient, a bad field, change the working folder), and the real
``savi`` command says so in one line naming the plugin and its distribution -- never as savi's own error, an
"unexpected" one, or a fault of the user's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from savi_plugin.cli import main
from tests.builders import install_distribution, write_jsonl

PLUGIN = '''
    import os
    from dataclasses import dataclass

    from savi_plugin.api import (LOSSES, PAIR, Generator, LossOutput, Outcome, PreferenceLoss, PreferenceRecord,
                                 PreferenceTrainer, Requirements, load)

    DPO = load(LOSSES, "dpo")


    def elsewhere():
        os.chdir(os.environ["BADPLUG_ELSEWHERE"])


    class BadLoss(PreferenceLoss):
        Params = DPO.Params

        def __init__(self, mode):
            self.mode, self.name = mode, "bad_" + mode

        def requirements(self, params):
            if self.mode == "requirements_raises":
                raise KeyError("req boom")
            if self.mode == "requirements_wrong_type":
                return {"level": "sequence"}
            if self.mode == "requirements_bad_field":
                return Requirements(level="bogus")
            return DPO.requirements(params)

        def compute(self, inputs, params):
            out = DPO.compute(inputs, params)
            if self.mode == "raises":
                raise ValueError("my loss is broken")
            if self.mode == "wrong_type":
                return (out.losses, out.chosen_rewards, out.rejected_rewards)
            if self.mode == "float_losses":
                return LossOutput(1.0, out.chosen_rewards, out.rejected_rewards)
            if self.mode == "wrong_shape":
                return LossOutput(out.losses.mean(), out.chosen_rewards, out.rejected_rewards)
            if self.mode == "no_grad":
                return LossOutput(out.losses.detach(), out.chosen_rewards, out.rejected_rewards)
            if self.mode == "chdir":
                elsewhere()
            if self.mode == "exits":
                raise SystemExit(0)
            return out


    class BadTrainer(PreferenceTrainer):
        MODE = None

        def __init__(self, *args, **kwargs):
            if self.MODE == "init_raises":
                raise RuntimeError("trainer init boom")
            if self.MODE == "init_chdir":
                elsewhere()
            if self.MODE == "init_exits":
                raise SystemExit(0)
            super().__init__(*args, **kwargs)

        def compute_loss(self, model, inputs, *args, **kwargs):
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            if self.MODE == "raises":
                raise ValueError("compute boom")
            if self.MODE == "wrong_type":
                return float(loss)
            if self.MODE == "wrong_shape":
                return loss.reshape(1).repeat(2)
            if self.MODE == "no_grad":
                return loss.detach()
            if self.MODE == "tripled":
                return loss * 3
            return loss


    @dataclass
    class Options:
        prompts: str | None = None


    @dataclass(frozen=True)
    class NoPrompts:
        word: str = "x"


    class BadGenerator(Generator):
        name = "badgen"
        config_class = Options
        MODE = None

        def __init__(self, options=None):
            if self.MODE == "init_raises":
                raise RuntimeError("generator init boom")
            if self.MODE == "init_exits":
                raise SystemExit(0)
            super().__init__(options)

        def process(self, lm, batch, ctx):
            if self.MODE == "raises":
                raise ValueError("generator process exploded")
            if self.MODE == "chdir":
                elsewhere()
            out = []
            for work in batch:
                record = PreferenceRecord(id=self.record_id(work.item.id, 0), video=work.item.video,
                                          question="Is it?", chosen="yes", rejected="no", source=self.name,
                                          meta=dict(ctx.meta))
                status, reason = {"bad_status": ("ok", "written"), "bad_reason": (PAIR, None)}.get(
                    self.MODE, (PAIR, "written"))
                out.append(Outcome(work.item.id, record.id, status, reason, record=record))
            if self.MODE == "wrong_type":
                return [o.to_json() for o in out]
            if self.MODE == "drops_item":
                return out[:1]
            return out


    class BadBackend(load("savi_plugin.backends", "llava_onevision")):
        family = "badfam"
        MODE = None

        @classmethod
        def from_pretrained(cls, path, **kwargs):
            if cls.MODE == "raises":
                raise RuntimeError("backend load boom")
            return super().from_pretrained(path, **kwargs)

        def messages(self, *args, **kwargs):
            if self.MODE == "hook_raises":
                raise ValueError("backend hook boom")
            if self.MODE == "hook_chdir":
                elsewhere()
            return super().messages(*args, **kwargs)


    for _mode in ("init_raises", "init_chdir", "init_exits", "raises", "wrong_type", "wrong_shape", "no_grad", "tripled",
                  "chdir", "bad_status", "bad_reason", "hook_raises", "hook_chdir", "drops_item"):
        for _base in (BadTrainer, BadGenerator, BadBackend):
            _name = f"{_base.__name__}_{_mode}"
            globals()[_name] = type(_name, (_base,), {"MODE": _mode, "__module__": __name__})
    BadGenerator_no_prompts_field = type("BadGenerator_no_prompts_field", (BadGenerator,),
                                         {"config_class": NoPrompts, "__module__": __name__})
'''

LOSS_MODES = ("raises", "wrong_type", "float_losses", "wrong_shape", "no_grad", "chdir", "exits", "requirements_raises",
              "requirements_wrong_type", "requirements_bad_field")
TRAINER_MODES = ("init_raises", "init_chdir", "init_exits", "raises", "wrong_type", "wrong_shape", "no_grad")
BACKEND_MODES = ("raises", "hook_raises", "hook_chdir")
GENERATOR_MODES = ("init_raises", "init_exits", "drops_item", "no_prompts_field", "raises", "wrong_type", "bad_status", "bad_reason", "chdir")

#: (kind, mode) -> the words the one error line holds after the plugin's name
EXPECTED = {
    ("loss", "raises"): "raised ValueError: my loss is broken",
    ("loss", "wrong_type"): "compute() returned a tuple, not a LossOutput of tensors",
    ("loss", "float_losses"): "compute()'s LossOutput.losses is a float, not a tensor",
    ("loss", "wrong_shape"): "compute()'s LossOutput.losses has shape (), not (1,)",
    ("loss", "no_grad"): "compute()'s LossOutput.losses carries no gradient",
    ("loss", "chdir"): "changed the working folder",
    ("loss", "exits"): "called sys.exit(0) in its compute",  # pass 26 O #51, #52: savi ended with status 0
    ("trainer", "init_exits"): "called sys.exit(0)",
    ("generator", "init_exits"): "called sys.exit(0)",
    ("generator", "drops_item"): "process() returned no outcome for item 'v1' (1 of the 2 items of its batch)",
    ("loss", "requirements_raises"): "raised KeyError: 'req boom'",
    ("loss", "requirements_wrong_type"): "requirements() returned a dict, not a Requirements",
    ("loss", "requirements_bad_field"): "raised ValueError: level must be one of ('sequence', 'token'), got 'bogus'",
    ("trainer", "init_raises"): "raised RuntimeError: trainer init boom",
    ("trainer", "init_chdir"): "changed the working folder",
    ("trainer", "raises"): "raised ValueError: compute boom",
    ("trainer", "wrong_type"): "compute_loss() returned a float, not a one-value loss tensor",
    ("trainer", "wrong_shape"): "compute_loss() returned a tensor of shape (2,), not a one-value loss tensor",
    ("trainer", "no_grad"): "compute_loss() returned a loss that carries no gradient",
    ("generator", "init_raises"): "raised RuntimeError: generator init boom",
    ("generator", "no_prompts_field"): "config_class NoPrompts lacks the field 'prompts' savi reads",
    ("generator", "raises"): "raised ValueError: generator process exploded",
    ("generator", "wrong_type"): "process()'s outcome 0 is a dict, not an Outcome",
    ("generator", "bad_status"): "process()'s outcome 0 has status 'ok', not one of 'pair', 'skipped', 'failed'",
    ("generator", "bad_reason"): "process()'s outcome 0 has reason None, not a short code",
    ("generator", "chdir"): "changed the working folder",
    ("backend", "raises"): "raised RuntimeError: backend load boom",
    ("backend", "hook_raises"): "raised ValueError: backend hook boom",
    ("backend", "hook_chdir"): "changed the working folder",
}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The throw-away distribution ``badplug`` with one entry per (kind, mode), each named ``bad_<mode>``."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("BADPLUG_ELSEWHERE", str(elsewhere))
    monkeypatch.chdir(tmp_path)
    install_distribution(tmp_path / "site", monkeypatch, "badplug", {
        "badplug/__init__.py": PLUGIN, "badplug/prompts/badgen.yaml": "version: bad-v1\n"}, {
        "savi_plugin.losses": {f"bad_{m}": f"badplug:LOSS_{m}" for m in LOSS_MODES},
        "savi_plugin.trainers": {f"bad_{m}": f"badplug:BadTrainer_{m}" for m in (*TRAINER_MODES, "tripled")},
        "savi_plugin.generators": {f"bad_{m}": f"badplug:BadGenerator_{m}" for m in GENERATOR_MODES},
        "savi_plugin.backends": {f"bad_{m}": f"badplug:BadBackend_{m}" for m in BACKEND_MODES}})
    with open(tmp_path / "site" / "badplug" / "__init__.py", "a") as f:  # one loss object per mode
        f.write("".join(f"LOSS_{m} = BadLoss({m!r})\n" for m in LOSS_MODES))
    return tmp_path


def _train(tmp_path: Path, model: Path, samples, model_section: dict | None = None, **train) -> list[str]:
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": f"p{i}", "video": s.video, "question": s.question, "chosen": f"The answer is {s.answer}.",
         "rejected": "It is none of them, I think."} for i, s in enumerate(samples[:2])])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"path": str(model), "num_frames": 4, "backend": "llava_onevision", **(model_section or {})},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"loss_type": "dpo", "learning_rate": 1.0e-4, "max_steps": 2, "per_device_train_batch_size": 1,
                  "use_cpu": True, "logging_steps": 1, "disable_tqdm": True, "seed": 0, "save_strategy": "no",
                  **train}}))
    return ["train", str(recipe), "--data", str(pairs), "--output-dir", str(tmp_path / "out")]


def _generate(tmp_path: Path, model: Path, samples, name: str) -> list[str]:
    manifest = write_jsonl(tmp_path / "qa.jsonl", [{"id": f"v{i}", "video": s.video}
                                                   for i, s in enumerate(samples[:2])])
    return ["generate", "--generator", name, "--model", str(model), "--backend", "llava_onevision",
            "--input", str(manifest), "--output", str(tmp_path / "gen" / "pairs.jsonl"), "--num-frames", "4",
            "--no-progress"]


@pytest.mark.parametrize("kind, mode", [("loss", m) for m in LOSS_MODES] + [("trainer", m) for m in TRAINER_MODES]
                         + [("generator", m) for m in GENERATOR_MODES] + [("backend", m) for m in BACKEND_MODES])
def test_a_plugin_that_breaks_its_contract_is_named_in_one_line(kind, mode, plugin, tiny_llava_onevision,
                                                                synthetic_samples, capsys):
    name = f"bad_{mode}"
    if kind == "generator":
        argv = _generate(plugin, tiny_llava_onevision, synthetic_samples, name)
    elif kind == "backend":
        argv = _train(plugin, tiny_llava_onevision, synthetic_samples, model_section={"backend": name})
    else:
        key = "loss_type" if kind == "loss" else "trainer"
        argv = _train(plugin, tiny_llava_onevision, synthetic_samples, **{key: name})
    assert main(argv) == 1
    err = capsys.readouterr().err
    said = f"{kind} {name!r} (entry of badplug 0.1)"
    if (kind, mode) == ("generator", "raises"):  # counted per item, as any failure of process, and named
        failed = json.loads((plugin / "gen" / "pairs.jsonl.report.json").read_text())["failed"]
        assert [(f["reason"], f["detail"]) for f in failed] == \
            [("generation_error", f"{said} {EXPECTED[kind, mode]}")] * 2
    else:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and lines[0].startswith(f"error: {said}") and EXPECTED[kind, mode] in lines[0], err
    assert "Traceback (most recent call last)" not in err and "(unexpected; re-run" not in err
    assert Path.cwd() == plugin  # put back where the plugin left it
    if (kind, mode) == ("generator", "bad_status"):  # refused when returned: never written, never the user's fault
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert EXPECTED[kind, mode] in err and "edited" not in err


def test_the_logged_loss_is_the_one_a_trainer_returned(plugin, tiny_llava_onevision, synthetic_samples):
    """A trainer whose compute_loss returns three times the preference loss is logged with what it returned: the
    loss that was optimised (DPO's first step is ln 2 exactly: policy and reference are the same model)."""
    argv = _train(plugin, tiny_llava_onevision, synthetic_samples, trainer="bad_tripled", max_steps=1)
    assert main(argv) == 0
    report = json.loads((plugin / "out" / "train_report.json").read_text())
    first = next(entry["loss"] for entry in report["log_history"] if "loss" in entry)
    assert first == pytest.approx(3 * 0.693147, abs=1e-3)
    assert os.getcwd() == str(plugin)
