"""savi_plugin.config.values: the one value check (types from annotations, declared rules, one-line errors)."""

from __future__ import annotations

import argparse
import dataclasses
import enum

import pytest

from savi_plugin.config.values import (
    AtLeast,
    Check,
    ConfigError,
    Each,
    OneOf,
    Positive,
    Range,
    arg_type,
    build,
    checked,
    register_rules,
    rules,
    to_dict,
    validate,
)


class Mode(enum.Enum):
    SUM = "sum"
    MEAN = "mean"


@dataclasses.dataclass(frozen=True)
class Inner:
    k: int = checked(3, AtLeast(1))


@dataclasses.dataclass(frozen=True)
class Params:
    beta: float = checked(0.1, Positive(), help="scale")
    mode: Mode | str = "sum"
    name: str = checked("a", OneOf("a", "b", what="name"))
    tasks: list[str] = dataclasses.field(default_factory=lambda: ["x"], metadata=rules(Check(bool, "non-empty")))
    limit: int | None = checked(None, AtLeast(1))
    inner: Inner = dataclasses.field(default_factory=Inner)

    def __post_init__(self):
        if self.name == "b" and self.beta > 1:
            raise ValueError("name 'b' needs beta <= 1")


def test_build_widens_and_checks_nested_sections():
    p = build(Params, {"beta": 1, "tasks": ["t"], "inner": {"k": 5}, "limit": None}, "train.loss", "r.yaml")
    assert p.beta == 1.0 and isinstance(p.beta, float) and p.inner == Inner(5) and p.limit is None
    assert build(Params, {"beta": "1e-5"}).beta == 1e-5  # YAML 1.1 reads 1e-5 as a string
    assert to_dict(p)["inner"] == {"k": 5}
    validate(p, "train.loss", "r.yaml")


@pytest.mark.parametrize("mapping, message", [
    ({"beta": 0}, "r.yaml: x.beta: must be > 0, got 0.0"),
    ({"beta": True}, "r.yaml: x.beta: expected float, got bool (True)"),
    ({"beta": "high"}, "r.yaml: x.beta: expected float, got str ('high')"),
    ({"mode": "median"}, "r.yaml: x.mode: unknown value 'median'; one of: sum, mean"),
    ({"mode": False}, "x.mode: expected Mode or str, got bool (False); YAML reads unquoted no/yes/on/off"),
    ({"name": "c"}, "r.yaml: x.name: unknown name 'c'; one of: a, b"),
    ({"tasks": []}, "r.yaml: x.tasks: non-empty, got []"),
    ({"tasks": [1]}, "r.yaml: x.tasks[0]: expected str, got int (1)"),
    ({"limit": 0}, "r.yaml: x.limit: must be >= 1, got 0"),
    ({"inner": {"k": 0}}, "r.yaml: x.inner.k: must be >= 1, got 0"),
    ({"inner": 3}, "r.yaml: x.inner: expected a mapping, got int (3)"),
    ({"bta": 1}, "r.yaml: x.bta: unknown key (known: beta, mode, name, tasks, limit, inner)"),
    ({"name": "b", "beta": 2}, "r.yaml: x.name: name 'b' needs beta <= 1"),  # __post_init__, located at its field
    ({"beta": float("nan")}, "r.yaml: x.beta: must be a finite number, got nan"),
])
def test_one_line_errors_name_file_and_key_path(mapping, message):
    with pytest.raises(ConfigError) as err:
        build(Params, mapping, "x", "r.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_validate_rechecks_a_built_instance():
    p = dataclasses.replace(build(Params, {}), beta=-1.0)  # replace() runs no rule
    with pytest.raises(ConfigError, match="^cfg.beta: must be > 0, got -1.0$"):
        validate(p, "cfg")


def test_registered_rules_apply_to_subclasses_unless_a_field_declares_its_own():
    @dataclasses.dataclass
    class Base:
        steps: int = 1
        rate: float = checked(0.5, Range(0, 1))

    @dataclasses.dataclass
    class Child(Base):
        extra: int = 0

    register_rules(Base, {"steps": [AtLeast(1)], "rate": [Positive()]})
    with pytest.raises(ConfigError, match="steps: must be >= 1"):
        build(Child, {"steps": 0})
    with pytest.raises(ConfigError, match=r"rate: must be >= 0 and <= 1"):
        build(Child, {"rate": 2.0})  # the declared Range, not the registered Positive


def test_a_flag_obeys_the_fields_rules():
    parser = argparse.ArgumentParser(prog="p", exit_on_error=False)
    parser.add_argument("--limit", type=arg_type(Params, "limit", "--limit"))
    assert parser.parse_args(["--limit", "3"]).limit == 3
    with pytest.raises(argparse.ArgumentError, match="must be >= 1, got 0"):
        parser.parse_args(["--limit", "0"])
    with pytest.raises(argparse.ArgumentError, match="expected an integer, got 'x'"):
        parser.parse_args(["--limit", "x"])


@dataclasses.dataclass
class Listed:
    sizes: list[int] = dataclasses.field(default_factory=lambda: [16, 32],
                                         metadata=rules(Each(AtLeast(1)), help="sizes"))


def test_a_list_flag_checks_each_element_and_a_list_value_names_the_element():
    from savi_plugin.config.values import add_flag

    parser = argparse.ArgumentParser(prog="p", exit_on_error=False)
    action = add_flag(parser, "--sizes", Listed, "sizes")
    assert action.nargs == "+" and action.default == [16, 32] and action.help == "sizes (default 16 32)"
    assert parser.parse_args(["--sizes", "3", "4"]).sizes == [3, 4]
    with pytest.raises(argparse.ArgumentError, match="argument --sizes: must be >= 1, got 0"):
        parser.parse_args(["--sizes", "3", "0"])
    with pytest.raises(argparse.ArgumentError, match="expected an integer, got 'x'"):
        parser.parse_args(["--sizes", "x"])
    with pytest.raises(ConfigError, match=r"^sizes: element \[1\] must be >= 1, got -2$"):
        build(Listed, {"sizes": [4, -2]})
