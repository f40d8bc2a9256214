"""Which stacks can install savi-plugin: each stack as its users install it from the package index, with this
checkout's plugin added, and the markdown table README's "Which stacks can install us" shows.

Every stack is measured from scratch (files under ``--work``, default a temporary folder) by one of two modes:

* ``resolve`` (default): ``pip install --dry-run --ignore-installed --report`` of the stack alone and of the stack
  plus this checkout's wheel (``pip install STACK... savi_plugin.whl[extras]``), by the running interpreter's
  pip. Nothing is installed, so a stack of several GB costs only metadata. The row says whether pip can install
  both together, which versions it picks, what adding the plugin changes in the stack's own resolution, and on a
  conflict pip's own reason lines.
* ``install``: the stack plus the plugin (with ``dev``) really installed into a throw-away venv, then
  ``pip check``, ``savi doctor`` and a smoke subset of the tests (``--tests``) run there. Minutes to an hour per
  stack (torch alone is several GB).

The pip that runs is the one of the interpreter that runs this script, with its configuration: where it caps a
release (this project's machines cap torch at 2.14.1, see README "Tested versions") the picked versions show it.

    python tools/stacks.py                        # every stack, resolve mode: the table on stdout
    python tools/stacks.py --only lmms-eval trl   # some stacks
    python tools/stacks.py --mode install --only lower-bounds --tests tests/losses
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the versions a row reports (and compares with the stack alone)
SHOWN = ("torch", "torchvision", "transformers", "peft", "accelerate", "lmms-eval", "filelock", "numpy", "decord")


@dataclass(frozen=True)
class Stack:
    """A stack as its users install it: requirement strings, and the plugin extras its users would add."""

    name: str
    requirements: tuple[str, ...]
    extras: str = ""
    note: str = ""
    compare: bool = False  # also resolve the stack alone, to show what adding the plugin changes in it


STACKS = (
    Stack("lmms-eval", ("lmms-eval==0.7.3",), note="lmms-eval's users, plugin without extras", compare=True),
    Stack("lmms-eval + [eval]", ("lmms-eval==0.7.3",), extras="eval",
          note="the install README gives lmms-eval users", compare=True),
    Stack("TRL", ("trl",), note="newest TRL", compare=True),
    Stack("newest", ("torch", "torchvision", "transformers", "peft", "accelerate"),
          note="newest releases of the core libraries"),
    Stack("one minor back", ("torch==2.13.0", "torchvision==0.28.0", "transformers==5.19.0")),
    Stack("lower bounds", ("torch==2.9.1", "torchvision==0.24.1", "transformers==5.18.0", "peft==0.18.0",
                           "accelerate==1.3.0"), note="setup.cfg's lower bounds"),
    Stack("transformers 5.17", ("transformers==5.17.0",), note="below our transformers bound"),
    Stack("lmms-engine", ("lmms-engine==0.1.4",), note="lmms-engine pins transformers < 5.9", compare=True),
    Stack("LLaVA-NeXT", ("torch==2.1.2", "torchvision==0.16.2", "peft==0.4.0", "numpy==1.26.1",
                         "transformers>=4.40,<4.41"),
          note="LLaVA-NeXT's `train` extra pins (its transformers pin is a 4.40.0.dev0 commit: nearest release)"),
)


@dataclass
class Result:
    stack: Stack
    ok: bool
    how: str
    seconds: float
    versions: dict[str, str]
    changed: dict[str, tuple[str, str]]
    reason: str = ""


def run(cmd: list[str], env: dict | None = None, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def make_venv(folder: Path) -> Path:
    """A fresh venv (its own site-packages only) with the running interpreter's Python; returns its python."""
    run([sys.executable, "-m", "venv", "--clear", str(folder)]).check_returncode()
    return folder / "bin" / "python"


def conflict_reason(stderr: str) -> str:
    """pip's own explanation of a failed resolution, in one line: the lines after 'The conflict is caused by:'
    (or the first ERROR line)."""
    lines = [x.strip() for x in stderr.splitlines()]
    if "The conflict is caused by:" in lines:
        start = lines.index("The conflict is caused by:") + 1
        caused = []
        for line in lines[start:]:
            if not line or line.startswith(("To fix", "Additionally", "ERROR")):
                break
            caused.append(line)
        return "; ".join(caused)
    errors = [x for x in lines if x.startswith("ERROR")]
    return errors[0][len("ERROR: "):] if errors else (lines[-1] if lines else "")


def resolve(python: Path, requirements: list[str], report: Path) -> tuple[dict[str, str] | None, str]:
    """pip's resolution of ``requirements`` from scratch: {name: version}, or None and pip's reason."""
    proc = run([str(python), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report", str(report),
                *requirements])  # not --quiet: pip logs "The conflict is caused by:" at the info level
    if proc.returncode != 0:
        return None, conflict_reason(proc.stdout + "\n" + proc.stderr)  # pip logs the causes at the info level
    picked = json.loads(report.read_text())["install"]
    return {p["metadata"]["name"].lower(): p["metadata"]["version"] for p in picked}, ""


def build_wheel(work: Path) -> Path:
    """This checkout as a wheel, built once (each resolution then reads its metadata instead of building it)."""
    out = work / "wheel"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)]).check_returncode()
    return next(out.glob("savi_plugin-*.whl"))


def plugin_requirement(wheel: Path, extras: str) -> str:
    return f"{wheel}[{extras}]" if extras else str(wheel)


def measure_resolve(stack: Stack, wheel: Path, work: Path) -> Result:
    """Resolution from scratch (``--ignore-installed``) by the running interpreter's pip: no venv is needed."""
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    python = Path(sys.executable)
    alone = resolve(python, list(stack.requirements), work / "alone.json")[0] if stack.compare else None
    both, reason = resolve(python, [*stack.requirements, plugin_requirement(wheel, stack.extras)], work / "both.json")
    seconds = time.time() - t0
    if both is None:
        return Result(stack, False, "resolve", seconds, {}, {}, reason)
    changed = {}
    if alone:
        for name in sorted(set(alone) | set(both)):
            if name != "savi-plugin" and alone.get(name) != both.get(name):
                changed[name] = (alone.get(name, "-"), both.get(name, "-"))
    return Result(stack, True, "resolve", seconds, {k: both[k] for k in SHOWN if k in both}, changed)


def measure_install(stack: Stack, wheel: Path, work: Path, tests: list[str]) -> Result:
    """A real install into a fresh venv, then ``pip check``, ``savi doctor`` and ``tests`` there."""
    t0 = time.time()
    python = make_venv(work)
    proc = run([str(python), "-m", "pip", "install", *stack.requirements,
                plugin_requirement(wheel, ",".join(filter(None, [stack.extras, "dev"])))])
    if proc.returncode != 0:
        return Result(stack, False, "install", time.time() - t0, {}, {},
                      conflict_reason(proc.stdout + "\n" + proc.stderr))
    listed = json.loads(run([str(python), "-m", "pip", "list", "--format", "json"]).stdout)
    versions = {p["name"].lower(): p["version"] for p in listed}
    problems = []
    check = run([str(python), "-m", "pip", "check"])
    if check.returncode != 0:
        problems.append("pip check: " + " / ".join(check.stdout.strip().splitlines()[:3]))
    doctor = run([str(python), "-m", "savi_plugin", "doctor"])
    if doctor.returncode != 0:
        problems.append("savi doctor: " + doctor.stdout.strip().splitlines()[-1])
    if tests:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        out = subprocess.run([str(python), "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider"], env=env,
                             capture_output=True, text=True, cwd=ROOT)
        summary = (out.stdout.strip().splitlines() or ["no output"])[-1]
        if out.returncode:
            problems.append(f"tests: {summary}")
        else:
            versions["tests"] = summary
    return Result(stack, not problems, "install", time.time() - t0, {k: versions[k] for k in (*SHOWN, "tests")
                                                                      if k in versions}, {}, "; ".join(problems))


def change(name: str, before: str, after: str) -> str:
    """One change the plugin makes in a stack's resolution, in words."""
    if before == "-":
        return f"adds {name} {after}"
    return f"removes {name} {before}" if after == "-" else f"moves {name} {before} -> {after}"


def row(result: Result) -> str:
    picked = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    if result.ok:
        verdict = "installs" if result.how == "resolve" else "installs; pip check, doctor and tests pass"
        if result.changed:
            verdict += "; the plugin " + ", ".join(change(k, a, b) for k, (a, b) in result.changed.items())
        elif result.how == "resolve" and result.stack.compare:
            verdict += "; the plugin changes none of the stack's versions"
    else:
        verdict = f"**cannot coexist**: {result.reason}"
    spec = " ".join(f"`{r}`" for r in result.stack.requirements) + (f" + `[{result.stack.extras}]`"
                                                                     if result.stack.extras else "")
    return (f"| {result.stack.name} | {spec} | {verdict} | {picked or '-'} | {result.how}, "
            f"{result.seconds:.0f} s |")


def print_saved(files: list[str]) -> None:
    """The table from saved results (several runs, e.g. stacks measured in parallel), in :data:`STACKS` order."""
    by_name = {s.name: s for s in STACKS}
    saved = {}
    for file in files:
        for r in json.loads(Path(file).read_text()):
            saved[r["stack"]["name"]] = Result(**{**r, "stack": by_name[r["stack"]["name"]],
                                                  "changed": {k: tuple(v) for k, v in r["changed"].items()}})
    print("| stack | requirements | result | versions pip picks | how, time |")
    print("|---|---|---|---|---|")
    for stack in STACKS:
        if stack.name in saved:
            print(row(saved[stack.name]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="stack names (default: all)")
    parser.add_argument("--mode", choices=("resolve", "install"), default="resolve")
    parser.add_argument("--tests", nargs="*", default=[], help="install mode: the test files to run there")
    parser.add_argument("--work", default=None, help="folder for the throw-away venvs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--wheel", default=None, help="this checkout's wheel, already built (default: build it)")
    parser.add_argument("--table-from", nargs="*", default=None, metavar="JSON",
                        help="print the table from earlier runs' --json files (in STACKS order), measuring nothing")
    args = parser.parse_args(argv)
    if args.table_from is not None:
        print_saved(args.table_from)
        return 0
    names = {s.name for s in STACKS}
    unknown = sorted(set(args.only or []) - names)
    if unknown:
        parser.error(f"unknown stack(s) {', '.join(unknown)}; choose from {', '.join(sorted(names))}")
    work = Path(args.work or tempfile.mkdtemp(prefix="savi_stacks_"))
    pip = run([sys.executable, "-m", "pip", "--version"]).stdout.split(" from ")[0]
    caps = [line for line in run([sys.executable, "-m", "pip", "config", "list"]).stdout.splitlines()
            if "constraint" in line]
    print(f"stacks measured by tools/stacks.py --mode {args.mode} with {pip}, Python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d')}; pip constraints: {', '.join(caps) or 'none'}", file=sys.stderr)
    wheel = Path(args.wheel) if args.wheel else build_wheel(work)
    results = []
    print("| stack | requirements | result | versions pip picks | how, time |")
    print("|---|---|---|---|---|")
    for stack in STACKS:
        if args.only and stack.name not in args.only:
            continue
        folder = work / re.sub(r"[^a-z0-9]+", "-", stack.name.lower())
        result = (measure_install(stack, wheel, folder, args.tests) if args.mode == "install"
                  else measure_resolve(stack, wheel, folder))
        results.append(result)
        print(row(result), flush=True)
        if args.json:  # after every stack, so a run stopped part-way keeps what it measured
            Path(args.json).write_text(json.dumps([{**r.__dict__, "stack": r.stack.__dict__} for r in results],
                                                  indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
