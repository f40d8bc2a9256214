"""Extension points, each proven from outside the package: a throw-away distribution declares a trainer or a
generator (with its own prompt templates) through an entry point, and the real ``savi`` command uses it; the
public API module exports what such a plugin imports. (Losses: tests/losses/test_interface.py; backends:
tests/models/test_backend_family.py; benchmarks: tests/eval/.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from savi_plugin.cli import main
from tests.builders import install_distribution, read_jsonl, write_jsonl

TRAINER_PKG = '''
    from savi_plugin.api import PreferenceTrainer


    class CountingTrainer(PreferenceTrainer):
        """Counts its compute_loss calls and logs the count with every metrics line."""

        calls = 0

        def compute_loss(self, model, inputs, *args, **kwargs):
            type(self).calls += 1
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs, *args, **kwargs):
            logs["counting/calls"] = float(type(self).calls)
            return super().log(logs, *args, **kwargs)


    class NotATrainer:
        pass
'''

GENERATOR_PKG = '''
    from dataclasses import dataclass

    from savi_plugin.api import PAIR, Generator, Outcome, PreferenceRecord, generate_chunked, render


    @dataclass
    class EchoOptions:
        prompts: str | None = None
        max_new_tokens: int = 4


    class EchoGenerator(Generator):
        """Asks its own templated question; the model's answer is rejected, a fixed sentence chosen."""

        name = "echo"
        config_class = EchoOptions
        prompt_fields = {"question": {"topic"}}

        def process(self, lm, batch, ctx):
            question = render(self.prompts, "question", topic="shape")
            answers = generate_chunked(lm, [w.frames for w in batch], [question] * len(batch),
                                       batch_size=ctx.batch_size, seed=ctx.seed,
                                       max_new_tokens=self.config.max_new_tokens, do_sample=False,
                                       temperature=1.0, top_p=1.0)
            out = []
            for work, answer in zip(batch, answers):
                record = PreferenceRecord(id=self.record_id(work.item.id, 0), video=work.item.video,
                                          question=question, chosen=self.prompts["chosen"],
                                          rejected=answer or "(empty)", source=self.name, meta=dict(ctx.meta))
                out.append(Outcome(work.item.id, record.id, PAIR, "written", record=record))
            return out
'''


@pytest.fixture
def tiny_pairs(synthetic_samples, tmp_path) -> Path:
    records = [{"id": f"p{i}", "video": s.video, "question": s.question, "chosen": f"The answer is {s.answer}.",
                "rejected": "It is none of them, I think."} for i, s in enumerate(synthetic_samples[:2])]
    return write_jsonl(tmp_path / "pairs.jsonl", records)


def _recipe(path: Path, model: Path, **train) -> Path:
    body = {"model": {"path": str(model), "num_frames": 4}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"loss_type": "dpo", "learning_rate": 1.0e-4, "max_steps": 2, "per_device_train_batch_size": 1,
                      "use_cpu": True, "logging_steps": 1, "disable_tqdm": True, "seed": 0, "save_strategy": "no",
                      **train}}
    path.write_text(yaml.safe_dump(body))
    return path


def test_a_trainer_from_another_distribution_is_chosen_by_the_recipe(tiny_llava_onevision, tiny_pairs, tmp_path,
                                                                    monkeypatch):
    install_distribution(tmp_path / "site", monkeypatch, "counting-trainer", {"counting_trainer.py": TRAINER_PKG},
                         {"savi_plugin.trainers": {"counting": "counting_trainer:CountingTrainer",
                                                   "broken": "counting_trainer:NotATrainer"}})
    recipe = _recipe(tmp_path / "r.yaml", tiny_llava_onevision, trainer="counting")
    assert main(["train", str(recipe), "--data", str(tiny_pairs), "--output-dir", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "train_report.json").read_text())
    logged = [entry["counting/calls"] for entry in report["log_history"] if "counting/calls" in entry]
    assert logged and logged[-1] >= 2  # the third party's compute_loss ran at each of the 2 steps


@pytest.mark.parametrize("name, message", [("no_such_trainer", "train.trainer"), ("broken", "not a PreferenceTrainer subclass")])
def test_an_unknown_or_wrong_trainer_is_one_line(name, message, tiny_llava_onevision, tiny_pairs, tmp_path,
                                                 monkeypatch, capsys):
    install_distribution(tmp_path / "site", monkeypatch, "counting-trainer", {"counting_trainer.py": TRAINER_PKG},
                         {"savi_plugin.trainers": {"broken": "counting_trainer:NotATrainer"}})
    recipe = _recipe(tmp_path / "r.yaml", tiny_llava_onevision, trainer=name)
    assert main(["train", str(recipe), "--data", str(tiny_pairs), "--output-dir", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert any(message in line for line in err) and "Traceback" not in "\n".join(err)


def test_a_generator_from_another_distribution_brings_its_own_prompts(tiny_llava_onevision, synthetic_samples,
                                                                      tmp_path, monkeypatch):
    install_distribution(tmp_path / "site", monkeypatch, "echo-gen", {
        "echo_gen/__init__.py": GENERATOR_PKG,
        "echo_gen/prompts/echo.yaml": 'version: echo-v1\nquestion: "Which {topic} is in the video?"\n'
                                      'chosen: "A shape I can see."\n'},
        {"savi_plugin.generators": {"echo": "echo_gen:EchoGenerator"}})
    manifest = write_jsonl(tmp_path / "qa.jsonl", [{"id": f"v{i}", "video": s.video}
                                                   for i, s in enumerate(synthetic_samples[:2])])
    out = tmp_path / "pairs.jsonl"
    assert main(["generate", "--generator", "echo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                 "--output", str(out), "--num-frames", "4", "--no-progress"]) == 0
    pairs = read_jsonl(out)
    assert [p["id"] for p in pairs] == ["v0-echo-0", "v1-echo-0"]
    assert {p["question"] for p in pairs} == {"Which shape is in the video?"}
    assert {p["chosen"] for p in pairs} == {"A shape I can see."}
    assert {p["meta"]["prompts_version"] for p in pairs} == {"echo-v1"}
    # the user's override of the third party's templates is checked against its declared fields
    bad = tmp_path / "bad_prompts.yaml"
    bad.write_text('question: "Which {colour} is it?"\n')
    assert main(["generate", "--generator", "echo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                 "--output", str(tmp_path / "other.jsonl"), "-o", f"prompts={bad}", "--no-progress"]) != 0


def test_a_generator_without_its_prompts_names_where_they_belong(tmp_path, monkeypatch):
    install_distribution(tmp_path / "site", monkeypatch, "echo-gen", {"echo_gen/__init__.py": GENERATOR_PKG},
                         {"savi_plugin.generators": {"echo": "echo_gen:EchoGenerator"}})
    from savi_plugin.generators.prompts import PromptError
    from savi_plugin.registry import GENERATORS, load

    with pytest.raises(PromptError, match=r"echo_gen: prompts/echo.yaml not found"):
        load(GENERATORS, "echo")()


def test_the_public_api_exports_resolve():
    import savi_plugin.api as api

    assert api.__all__ == sorted(api.__all__)
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    with pytest.raises(AttributeError):
        api.no_such_name  # noqa: B018


HOSTILE_PKG = '''
    from savi_plugin.losses.simpo import SIMPO_LOSS as SHADOW

    GARBAGE = 42


    class PlainClass:
        pass
'''


def test_a_name_two_packages_register_with_different_objects_is_refused_everywhere(tmp_path, monkeypatch, capsys):
    """Pass 19 C #1: a package registering ``dpo`` (SimPO under that name) replaced ours with no word: ``savi plugins``
    listed only its entry, training ran SimPO reported as ``dpo``, ``savi doctor`` said all good. One name, one
    object: the name is refused where it is used, listed twice, and named by the doctor."""
    from savi_plugin import registry
    from savi_plugin.doctor import FAIL, plugin_checks

    install_distribution(tmp_path / "site", monkeypatch, "hostile-savi", {"hostile.py": HOSTILE_PKG},
                         {"savi_plugin.losses": {"dpo": "hostile:SHADOW"}})
    assert registry.available(registry.LOSSES).count("dpo") == 1
    with pytest.raises(registry.PluginError, match=r"'dpo' is registered by several packages with different "
                                                   r"objects \(.*hostile:SHADOW from hostile-savi.*\): one name, one "
                                                   r"object; uninstall one of them"):
        registry.load(registry.LOSSES, "dpo")
    assert main(["recipes", "show", "tiny_demo", "train.loss_type=dpo"]) == 2
    assert "registered by several packages" in capsys.readouterr().err
    assert main(["plugins"]) == 1
    listed = [line for line in capsys.readouterr().out.splitlines() if "conflict" in line]
    assert len(listed) == 2 and all(line.strip().startswith("dpo ") for line in listed), listed
    assert any("hostile:SHADOW  [hostile-savi]" in line for line in listed)
    assert [c.status for c in plugin_checks()] == [FAIL]


@pytest.mark.parametrize("value, words", [("hostile:PlainClass", "is the class PlainClass, not a Generator subclass"),
                                          ("hostile:GARBAGE", "is a int, not a Generator subclass"),
                                          ("hostile_boom:X", "cannot be loaded: RuntimeError: hostile import boom")])
def test_a_generator_entry_that_is_no_generator_is_one_configuration_line_naming_its_package(value, words, tmp_path,
                                                                                           monkeypatch, capsys):
    """Pass 19 C #3, #4: a plugin whose module raises at import, or a plain class registered as a generator, ended as
    "unexpected" errors (exit 1) naming neither the entry nor its package."""
    install_distribution(tmp_path / "site", monkeypatch, "hostile-savi",
                         {"hostile.py": HOSTILE_PKG, "hostile_boom.py": "raise RuntimeError('hostile import boom')\n"},
                         {"savi_plugin.generators": {"bad": value}})
    code = main(["generate", "--generator", "bad", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "q"),
                 "--output", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"'savi_plugin.generators' entry 'bad' ({value} from hostile-savi)" in err[0] and words in err[0], err


OFFSET_PKG = '''
    from dataclasses import dataclass

    from savi_plugin.api import checked
    from savi_plugin.losses.dpo import DPO_LOSS


    class OffsetLoss(type(DPO_LOSS)):
        """DPO plus a constant: which default trained is visible in the loss."""

        name = "offset_loss"

        @dataclass(frozen=True)
        class Params(type(DPO_LOSS).Params):
            offset: float = checked(DEFAULT_OFFSET)

        def compute(self, inputs, params):
            out = super().compute(inputs, params)
            out.losses = out.losses + params.offset
            return out


    OFFSET_LOSS = OffsetLoss()
'''


def _change_plugin(root: Path, monkeypatch, dist: str, version: str, files: dict[str, str]) -> None:
    """The throw-away distribution ``dist`` (:func:`install_distribution`) upgraded in place: new ``files`` and
    ``version``, its modules imported anew (as a ``pip install`` of the new release would leave them)."""
    import sys
    import textwrap

    for rel, text in files.items():
        (root / rel).write_text(textwrap.dedent(text))
    (root / f"{dist.replace('-', '_')}-0.1.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    for module in {rel.split("/")[0].removesuffix(".py") for rel in files}:
        for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            monkeypatch.delitem(sys.modules, loaded)


@pytest.mark.parametrize("command", ["train", "generate"])
def test_a_plugin_changed_since_its_run_began_is_refused_naming_it(command, tiny_llava_onevision, synthetic_samples,
                                                                   tiny_pairs, tmp_path, monkeypatch, capsys):
    """Pass 26 O #14, #35: a loss plugin's version and default, or a generator plugin's version and code, changed
    between a run and its resume; the resume went on silently, mixing two plugins' work in one result. The run
    identity holds each plugin's entry, distribution and version (and the loss's resolved Params): the resume is
    refused in one line naming the component and what changed."""
    site = tmp_path / "site"
    if command == "train":
        files = {"goodloss.py": OFFSET_PKG.replace("DEFAULT_OFFSET", "100.0")}
        install_distribution(site, monkeypatch, "goodloss", files, {"savi_plugin.losses": {
            "offset_loss": "goodloss:OFFSET_LOSS"}})
        recipe = _recipe(tmp_path / "r.yaml", tiny_llava_onevision, loss_type="offset_loss", max_steps=1)
        argv = ["train", str(recipe), "--data", str(tiny_pairs), "--output-dir", str(tmp_path / "out")]
        first, again = argv, argv
        change = ("goodloss", {"goodloss.py": OFFSET_PKG.replace("DEFAULT_OFFSET", "5.0")})
        said = ["train.loss_type: plugin 'offset_loss' (goodloss 0.1 -> 0.2)", "loss_params.offset: 100.0 -> 5.0"]
    else:
        prompts = 'version: echo-v1\nquestion: "Which {topic} is in the video?"\nchosen: "A shape I can see."\n'
        install_distribution(site, monkeypatch, "echo-gen", {"echo_gen/__init__.py": GENERATOR_PKG,
                                                             "echo_gen/prompts/echo.yaml": prompts},
                             {"savi_plugin.generators": {"echo": "echo_gen:EchoGenerator"}})
        manifest = write_jsonl(tmp_path / "qa.jsonl", [{"id": f"v{i}", "video": s.video}
                                                       for i, s in enumerate(synthetic_samples[:2])])
        again = ["generate", "--generator", "echo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                 "--output", str(tmp_path / "made.jsonl"), "--num-frames", "4", "--no-progress"]
        first = [*again, "--limit", "1"]
        change = ("echo-gen", {"echo_gen/__init__.py": GENERATOR_PKG.replace("A shape", "CHANGED")})
        said = ["generate.generator: plugin 'echo' (echo-gen 0.1 -> 0.2)"]
    assert main(first) == 0
    capsys.readouterr()
    _change_plugin(site, monkeypatch, change[0], "0.2", change[1])
    assert main(again) == 1  # a run refused (another configuration), as for any other change
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and all(words in err[0] for words in said), err


BROKEN_PKG = '''
    import dataclasses

    from savi_plugin.api import PreferenceLoss, checked
    from savi_plugin.losses.dpo import DPO_LOSS as MISNAME


    class BadDefault(PreferenceLoss):
        name = "baddef"

        @dataclasses.dataclass(frozen=True)
        class Params:
            scale: float = checked(float("nan"))


    BADDEF = BadDefault()


    def a_function():
        pass


    class Plain:
        pass
'''


@pytest.mark.parametrize("group, name, value, words", [
    ("savi_plugin.losses", "noimp", "no_such_module:X", "cannot be loaded: ModuleNotFoundError: No module named"),
    ("savi_plugin.losses", "raiseimp", "broken_boom:X", "cannot be loaded: RuntimeError: plugin import boom"),
    ("savi_plugin.losses", "fnloss", "broken_plugins:a_function", "is a function, not a PreferenceLoss instance"),
    ("savi_plugin.losses", "baddef", "broken_plugins:BADDEF",
     "declares the default scale = nan, which its own rule refuses: must be a finite number"),
    ("savi_plugin.losses", "rr\u0440o", "broken_plugins:MISNAME",
     r"cannot be used: its name holds characters outside [A-Za-z0-9_.-]: it reads as 'rrpo' but is not it"),
    ("savi_plugin.losses", "RRPO", "broken_plugins:MISNAME", "cannot be used: it reads as 'rrpo' but is not it"),
    ("savi_plugin.trainers", "nott", "broken_plugins:Plain", "is the class Plain, not a PreferenceTrainer subclass"),
    ("savi_plugin.backends", "notvlm", "broken_plugins:Plain", "is the class Plain, not a VideoLM subclass"),
    ("savi_plugin.generators", "my.gen!", "broken_plugins:Plain", "its name holds characters outside"),
])
def test_a_broken_plugin_entry_is_marked_and_refused_in_one_line(group, name, value, words, tiny_llava_onevision,
                                                                 tiny_pairs, tmp_path, monkeypatch, capsys):
    """Pass 26 O #4, #23, #39, #40: a broken entry (module missing, raising at import, an object of the wrong kind, a
    loss default its own rule refuses, a name that reads as ``rrpo``) was listed by ``savi plugins`` like a working
    one (exit 0), and used -- trained NaN, trained as if it were ``rrpo`` -- or refused for another reason. Each is
    marked with its reason (exit 1), is ``savi doctor``'s one plugin row, and is refused where it is used, in one
    line naming the entry, before any model loads."""
    from savi_plugin.doctor import WARN, plugin_checks

    install_distribution(tmp_path / "site", monkeypatch, "broken-savi",
                         {"broken_plugins.py": BROKEN_PKG, "broken_boom.py": "raise RuntimeError('plugin import boom')\n"},
                         {group: {name: value}})
    assert main(["plugins"]) == 1
    listed = [line for line in capsys.readouterr().out.splitlines() if "[broken-savi]" in line]
    assert len(listed) == 1 and "(broken: " in listed[0] and words in listed[0], listed
    rows = plugin_checks()
    assert [c.status for c in rows] == [WARN] and words in rows[0].detail, rows  # savi's own parts still work
    use = {"savi_plugin.losses": ["recipes", "show", "tiny_demo", f"train.loss_type={name}"],
           "savi_plugin.trainers": ["recipes", "show", "tiny_demo", f"train.trainer={name}"],
           "savi_plugin.generators": ["generate", "--generator", name, "--model", str(tiny_llava_onevision),
                                      "--input", str(tmp_path / "q"), "--output", str(tmp_path / "o.jsonl")],
           "savi_plugin.backends": ["train", str(_recipe(tmp_path / "r.yaml", tiny_llava_onevision)),
                                    "--data", str(tiny_pairs), "--output-dir", str(tmp_path / "out"),
                                    f"model.backend={name}"]}[group]
    assert main(use) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and words in err[0] and "broken-savi" in err[0], err
    assert not (tmp_path / "out").exists()


NOASK_PKG = GENERATOR_PKG.replace('prompt_fields = {"question": {"topic"}}',
                                  'prompt_fields = {"question": {"topic"}, "ask": {"topic"}}')


def test_a_generator_whose_prompts_lack_a_declared_template_is_refused_naming_the_file(tmp_path, monkeypatch, capsys):
    """Pass 26 O #34: a generator declaring the template ``ask`` in its ``prompt_fields`` ran with a packaged prompts
    file that has none; it is refused in one line naming the file and the key, before any model loads."""
    install_distribution(tmp_path / "site", monkeypatch, "echo-gen", {
        "echo_gen/__init__.py": NOASK_PKG,
        "echo_gen/prompts/echo.yaml": 'version: v1\nquestion: "Which {topic}?"\nchosen: "A shape."\nother: x\n'},
        {"savi_plugin.generators": {"echo": "echo_gen:EchoGenerator"}})
    code = main(["generate", "--generator", "echo", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "q"),
                 "--output", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "echo_gen: prompts/echo.yaml: missing key 'ask', which generator 'echo' declares in its prompt_fields" \
        in err[0], err
