"""What third-party plugins hand back is held to the rules savi's own parts are (pass 26 O): a loss's non-finite
metric is a non-finite step, never a NaN in the report. Each case installs a throw-away distribution on sys.path
(as tests/test_registry.py does) and runs the real ``savi`` command through ``main(argv)``."""

from __future__ import annotations

import json

import pytest

from savi_plugin.cli import main
from tests.builders import install_distribution, read_jsonl, write_jsonl
from tests.test_registry import _recipe, tiny_pairs  # noqa: F401 - the fixture, shared

ODD_LOSS_PKG = '''
    import os
    from dataclasses import dataclass

    import torch

    from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements


    class Odd(PreferenceLoss):
        """A reference-free margin loss whose reported values are spoiled as $ODD_METRIC says."""

        name = "odd"

        @dataclass(frozen=True)
        class Params:
            pass

        def requirements(self, params):
            return Requirements(level="sequence", reference=False)

        def compute(self, inputs, params):
            gap = inputs.policy_chosen - inputs.policy_rejected
            chosen, rejected = gap.detach(), -gap.detach()
            metrics = {"gap": gap.detach()}
            spoil = os.environ["ODD_METRIC"]
            if spoil == "chosen_rewards":
                chosen = torch.full_like(chosen, float("nan"))
            elif spoil == "rejected_rewards":
                rejected = torch.full_like(rejected, float("inf"))
            elif spoil == "own_metric":
                metrics["gap"] = torch.full_like(gap, float("nan")).detach()
            return LossOutput(torch.nn.functional.softplus(-gap), chosen, rejected, metrics)


    ODD = Odd()
'''


def _no_nan(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in the report")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("spoil, named", [("chosen_rewards", "metric 'rewards/chosen' (nan)"),
                                          ("rejected_rewards", "metric 'rewards/rejected' (inf)"),
                                          ("own_metric", "metric 'odd/gap' (nan)")])
def test_a_non_finite_metric_a_loss_reports_is_a_non_finite_step_never_a_nan_in_the_report(
        spoil, named, tiny_llava_onevision, tiny_pairs, tmp_path, monkeypatch, capsys):  # noqa: F811
    """O #44: a loss returning NaN rewards (its loss finite) trained with exit 0 and wrote ``"rewards/chosen": NaN``
    into train_report.json, which ``savi plot`` then refused. The non-finite loss rule covers every value the loss
    reports: each such step is skipped and counted, the run fails naming the metric and the loss, and the report is
    JSON savi's own readers take."""
    install_distribution(tmp_path / "site", monkeypatch, "odd-loss", {"odd_loss.py": ODD_LOSS_PKG},
                         {"savi_plugin.losses": {"odd": "odd_loss:ODD"}})
    monkeypatch.setenv("ODD_METRIC", spoil)
    recipe = _recipe(tmp_path / "r.yaml", tiny_llava_onevision, loss_type="odd")
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--data", str(tiny_pairs), "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 of 2 optimizer steps were skipped" in err and f"(first: non-finite {named} of loss 'odd' at step 1" \
        in err, err[-2000:]
    report = _no_nan((out / "train_report.json").read_text())
    assert report["nonfinite_steps"] == 2 and report["failed"]
    assert not (out / "adapter_model.safetensors").exists()
    main(["plot", str(out), "--out", str(tmp_path / "x.png")])
    assert "NaN" not in capsys.readouterr().err  # savi plot reads the report (whatever it makes of a failed run)


BENT_GEN_PKG = '''
    import os
    from dataclasses import dataclass

    from savi_plugin.api import PAIR, Generator, Outcome, PreferenceRecord


    @dataclass
    class Options:
        prompts: str | None = None


    class Bent(Generator):
        """Writes one fixed pair per item, bent as $BENT says: every item's record under one id, or chosen ==
        rejected for the second item."""

        name = "bent"
        config_class = Options
        prompt_fields = {"question": set()}

        def process(self, lm, batch, ctx):
            out = []
            for work in batch:
                rid = "same" if os.environ["BENT"] == "dupid" else self.record_id(work.item.id, 0)
                rejected = "A red square." if os.environ["BENT"] == "samecr" and work.item.id == "v1" else "No."
                record = PreferenceRecord(id=rid, video=work.item.video, question=self.prompts["question"],
                                          chosen="A red square.", rejected=rejected, source=self.name,
                                          meta=dict(ctx.meta))
                out.append(Outcome(work.item.id, rid, PAIR, "written", record=record))
            return out
'''


@pytest.mark.parametrize("bent, detail", [
    ("dupid", "generator 'bent': record id 'same' is already item 'v0''s record (one id, one record)"),
    ("samecr", ("generator 'bent': record 'v1-bent-0' is refused by the record rule (savi data validate): "
                "rejected: identical to chosen"))])
def test_a_generator_s_record_validate_refuses_or_a_repeated_id_is_a_listed_failure_never_written_or_dropped(
        bent, detail, tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch, capsys):
    """O #53: two items' pairs under one record id -- one dropped silently, the report said 2 pairs, the file held 1.
    O #54: chosen == rejected written with exit 0, then refused by ``savi data validate``. A plugin generator's
    records are checked by validate's record rule and the run's ids before they are written: the bad one is a
    failure naming the generator, counted and listed, the run ends non-zero, and what was written validates."""

    install_distribution(tmp_path / "site", monkeypatch, "bent-gen", {
        "bent_gen/__init__.py": BENT_GEN_PKG, "bent_gen/prompts/bent.yaml": 'version: b1\nquestion: "What is it?"\n'},
        {"savi_plugin.generators": {"bent": "bent_gen:Bent"}})
    monkeypatch.setenv("BENT", bent)
    manifest = write_jsonl(tmp_path / "qa.jsonl", [{"id": f"v{i}", "video": s.video}
                                                   for i, s in enumerate(synthetic_samples[:2])])
    out = tmp_path / "g" / "pairs.jsonl"
    assert main(["generate", "--generator", "bent", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                 "--output", str(out), "--num-frames", "4", "--no-progress"]) == 1
    capsys.readouterr()
    report = json.loads(out.with_name("pairs.jsonl.report.json").read_text())
    assert [(f["item"], f["reason"], f["detail"][:len(detail)]) for f in report["failed"]] == [
        ("v1", "generation_error", detail)]
    assert report["counts"]["pairs"] == report["records_in_output"] == len(read_jsonl(out)) == 1
    assert main(["data", "validate", str(out)]) == 0


def test_a_generator_registered_under_another_entry_name_is_recorded_by_that_name(tiny_llava_onevision,
                                                                                  synthetic_samples, tmp_path,
                                                                                  monkeypatch, capsys):
    """O #60: a generator class (``name = "bent"``) registered as ``alias`` wrote records and a report saying
    ``bent``, while a loss under an alias is recorded by its entry name. Both go by the name the user typed; the
    templates stay the class's own ``prompts/bent.yaml``."""
    install_distribution(tmp_path / "site", monkeypatch, "bent-gen", {
        "bent_gen/__init__.py": BENT_GEN_PKG, "bent_gen/prompts/bent.yaml": 'version: b1\nquestion: "What is it?"\n'},
        {"savi_plugin.generators": {"alias": "bent_gen:Bent"}})
    monkeypatch.setenv("BENT", "good")
    manifest = write_jsonl(tmp_path / "qa.jsonl", [{"id": "v0", "video": synthetic_samples[0].video}])
    out = tmp_path / "g" / "pairs.jsonl"
    assert main(["generate", "--generator", "alias", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                 "--output", str(out), "--num-frames", "4", "--no-progress"]) == 0
    capsys.readouterr()
    (record,) = read_jsonl(out)
    assert (record["id"], record["source"], record["meta"]["generator"]) == ("v0-alias-0", "alias", "alias")
    assert record["meta"]["prompts_version"] == "b1"
    report = json.loads(out.with_name("pairs.jsonl.report.json").read_text())
    assert report["config"]["generator"] == "alias"


def test_a_broken_loss_among_ablate_s_losses_is_named_by_losses(tmp_path, monkeypatch, capsys):
    """O #45: ``savi ablate --losses dpo,raiseimp`` named ``override 'train.loss_type=raiseimp'``, an override the
    user never typed: the line names the flag they did type."""
    install_distribution(tmp_path / "site", monkeypatch, "raiseimp", {"raiseimp.py": "raise RuntimeError('boom')\n"},
                         {"savi_plugin.losses": {"raiseimp": "raiseimp:LOSS"}})
    monkeypatch.chdir(tmp_path)
    code = main(["ablate", "tiny_demo", "--losses", "dpo,raiseimp", "--dry-run", "--out", "ab"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: --losses 'raiseimp': train.loss_type: ") and "RuntimeError: boom" in err[0], err
    assert "override" not in err[0]


@pytest.mark.parametrize("value", ["goodloss.loss:", "a b c", ":X"])
def test_a_malformed_entry_value_is_one_line_naming_the_entry_and_its_value(value, tmp_path, monkeypatch, capsys):
    """O #50: an entry whose value is no ``module:attribute`` reference ended as ``AttributeError: 'NoneType' object
    has no attribute 'group'`` (importlib's internals): the line names the entry, its value and what it must be."""
    install_distribution(tmp_path / "site", monkeypatch, "mal", {}, {"savi_plugin.losses": {"mal1": value}})
    assert main(["recipes", "show", "tiny_demo", "train.loss_type=mal1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"entry 'mal1' ({value} from mal) cannot be loaded: ValueError: {value!r} is not a " \
                             f"module:attribute reference" in err[0], err
    assert "NoneType" not in err[0]
