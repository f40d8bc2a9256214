"""No command writes a file except through the output layer (:mod:`savi_plugin.data.outputs` and the JSONL
appender in :mod:`savi_plugin.data.writer`).

The test reads every module of ``savi_plugin/`` as a syntax tree and lists each call that writes, renames or
copies a file directly: ``open``/``Path.open``/``av.open`` with a writing mode, ``os.open`` with a writing flag,
``Path.write_text``/``write_bytes``, ``json.dump``/``yaml.dump`` to a file, ``shutil.copy*``/``move``,
``os.replace``/``os.rename``/``Path.rename``, ``torch.save``, ``np.save*``, ``save_file``, ``save_pretrained``,
``savefig``. Each one must be listed in :data:`ALLOWED` with the reason it is safe (it writes into a temporary
folder or a folder the output layer has claimed, or it writes no user output at all); a new direct write fails
the test until it goes through the layer or is given a reason.

An append (``open`` in mode ``a``, ``os.open`` with ``O_APPEND``) has no reason: every JSONL output is appended
through :class:`savi_plugin.data.writer.JsonlAppender`, which cuts a torn last line on reopen, so a row written
after a kill is never glued onto the killed run's half line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "savi_plugin"
#: the output layer itself (the package savi_plugin/data/outputs/ and the writer)
LAYER = {p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "data" / "outputs").glob("*.py")} | {"data/writer.py"}

_CLAIMED = "writes into a folder claimed by data.outputs.claim for the whole job"
_TEMP = "writes into a temporary folder of data.outputs.replace_folder / temp_folder, published by one rename"
_BUILDER = "builds a test/bench fixture model in a folder its caller owns (tests' tmp_path, a claimed bench folder)"
_ATOMIC = "writes to the temporary path of data.outputs.atomic_path (renamed onto the destination when complete)"

#: (module, enclosing function, call) -> why the direct write is safe
ALLOWED: dict[tuple[str, str, str], str] = {
    ("cli/__init__.py", "_stdout_to_null", "os.open"): "opens the null device to put under stdout once its "
                                                       "reader closed the pipe or its device is full (writes no file)",
    ("pipeline/align.py", "merge_adapter", "save_pretrained"): _TEMP,
    ("models/llava_next/convert.py", "convert_llava_next", "save_file"): _TEMP,
    ("models/llava_next/convert.py", "convert_llava_next", "save_pretrained"): _TEMP,
    ("video/synthetic.py", "write_mp4", "open"): _ATOMIC + " (av.open of the temporary .mp4)",
    ("bench/fixtures.py", "_write_h264", "open"): _ATOMIC + " (av.open of the temporary .mp4)",
    ("models/tiny.py", "build_tiny_model", "save_pretrained"): _TEMP,
    ("models/tiny.py", "build_tiny_model", "write_text"): _TEMP,
    ("models/llava_next/tiny.py", "build_tiny_tokenizer", "open"): _BUILDER,
    ("models/llava_next/tiny.py", "build_tiny_tokenizer", "json.dump"): _BUILDER,
    ("models/llava_next/tiny.py", "build_tiny_llava_next", "open"): _BUILDER,
    ("models/llava_next/tiny.py", "build_tiny_llava_next", "json.dump"): _BUILDER,
    ("models/llava_next/tiny.py", "build_tiny_llava_next", "save_file"): _BUILDER,
    ("bench/fixtures.py", "_build_bench_model", "save_pretrained"): _TEMP,
    ("bench/fixtures.py", "make_adapter", "save_pretrained"): _TEMP,
    ("demo/warmup.py", "supervised_warmup", "save_pretrained"): _TEMP + " (savi demo --out: step_product's)",
    ("demo/plots.py", "plot_demo", "savefig"): _CLAIMED + " (savi demo --out)",
    ("demo/plots.py", "plot_seeds", "savefig"): _CLAIMED + " (savi demo --seeds N --out)",
    ("eval/fixtures.py", "_place", "shutil.move"):
        _CLAIMED + " (savi eval fixture's FixtureFolder); moved from its temporary folder beside the root",
    ("eval/pth_install.py", "write_pth", "open"):
        "the .pth hook file of a wheel/build root that the packaging step asks for (not a run output)",
    ("eval/command.py", "run_judged", "open"):
        "lmms-eval's log stream, inside the eval folder of a claimed align run folder (pipeline/evaluate.py)",
    ("eval/suite.py", "_stream", "open"):
        "lmms-eval's log stream, inside the suite's --out folder (refused when it holds another suite)",
    ("bench/measure.py", "_reset_peak", "open"): "/proc/self/clear_refs: a kernel control file, not an output",
    ("inspection/site.py", "build_site", "write_text"): _TEMP + " (savi inspect --out)",
    ("inspection/curves.py", "plot_training", "savefig"): _ATOMIC + " (savi plot)",
    ("eval/suite.py", "plot_deltas", "savefig"): _ATOMIC + " (savi eval suite's delta.png)",
}

_WRITE_MODES = set("wax+")
_ALWAYS = {"write_text", "write_bytes", "save_pretrained", "save_file", "savefig", "copyfile", "copy2", "copytree",
           "savez", "savez_compressed"}
_BARE = {"save_file", "copyfile", "copy2", "copytree"}
_MODULE_CALLS = {("json", "dump"), ("yaml", "dump"), ("yaml", "safe_dump"), ("shutil", "copy"), ("shutil", "move"),
                 ("shutil", "copyfile"), ("shutil", "copy2"), ("shutil", "copytree"), ("os", "replace"),
                 ("os", "rename"), ("torch", "save"), ("np", "save"), ("numpy", "save")}


def _mode(call: ast.Call, position: int) -> str | None:
    value = call.args[position] if len(call.args) > position else None
    for kw in call.keywords:
        if kw.arg == "mode":
            value = kw.value
    return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None


def _writes(call: ast.Call) -> str | None:
    """The name of the writing call, or None when ``call`` does not write a file."""
    func = call.func
    if isinstance(func, ast.Name):  # a bare name: builtins and functions imported by name (not the layer's own)
        if func.id == "open":
            mode = _mode(call, 1)
            return "open" if mode and _WRITE_MODES & set(mode) else None
        return func.id if func.id in _BARE else None
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if (owner, func.attr) in _MODULE_CALLS:
        if owner == "yaml" and len(call.args) < 2 and not any(kw.arg == "stream" for kw in call.keywords):
            return None  # yaml.safe_dump(obj) returns text
        return f"{owner}.{func.attr}" if owner in ("json", "yaml", "shutil") else func.attr
    if func.attr == "open" and owner == "os":
        flags = ast.unparse(call.args[1]) if len(call.args) > 1 else ""
        return "os.open" if any(f in flags for f in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND")) else None
    if func.attr == "open":
        mode = _mode(call, 0 if owner is None else 1) or _mode(call, 0)
        return "open" if mode and _WRITE_MODES & set(mode) else None
    if func.attr == "rename":
        return "rename"
    if func.attr in _ALWAYS:
        return func.attr
    return None


def _appends(call: ast.Call) -> bool:
    """Whether ``call`` opens a file for appending."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "open" and isinstance(func.value, ast.Name) \
            and func.value.id == "os":
        return len(call.args) > 1 and "O_APPEND" in ast.unparse(call.args[1])
    if (isinstance(func, ast.Name) and func.id == "open") or (isinstance(func, ast.Attribute)
                                                              and func.attr == "open"):
        if isinstance(func, ast.Name):  # open(path, mode)
            mode = _mode(call, 1)
        else:  # Path.open(mode) or module.open(path, mode), as _writes reads them
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            mode = _mode(call, 0 if owner is None else 1) or _mode(call, 0)
        return bool(mode) and "a" in mode
    return False


def appends() -> list[str]:
    """``module:line`` of every append outside :mod:`savi_plugin.data.writer`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == "data/writer.py":
            continue
        found += [f"savi_plugin/{module}:{node.lineno}" for node in ast.walk(ast.parse(path.read_text("utf-8")))
                  if isinstance(node, ast.Call) and _appends(node)]
    return found


def direct_writes() -> list[tuple[str, str, str, int]]:
    """``(module, enclosing function, call, line)`` of every direct write outside the output layer."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in LAYER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node, function):
            for child in ast.iter_child_nodes(node):
                name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
                if isinstance(child, ast.Call):
                    call = _writes(child)
                    if call:
                        found.append((module, function, call, child.lineno))
                visit(child, name)

        visit(tree, "<module>")
    return found


def test_every_direct_write_goes_through_the_output_layer_or_is_allowed_with_a_reason():
    unexplained = [f"savi_plugin/{m}:{line}: {call} in {fn}()" for m, fn, call, line in direct_writes()
                   if (m, fn, call) not in ALLOWED]
    assert not unexplained, ("direct file writes outside savi_plugin.data.outputs (use its write_json/write_text/"
                             "atomic_path/replace_folder, or add a reason to ALLOWED):\n" + "\n".join(unexplained))


def test_every_allowed_write_still_exists():
    """A reason for a write that is gone is removed, so the list stays the list of real exceptions."""
    present = {(m, fn, call) for m, fn, call, _ in direct_writes()}
    assert not set(ALLOWED) - present, sorted(set(ALLOWED) - present)


def test_the_scanner_finds_each_kind_of_write():
    source = """
def f(p, obj, fh):
    open(p, "w"); p.open("a"); p.write_text("x"); json.dump(obj, fh); shutil.copyfile(p, p); os.replace(p, p)
    p.rename(p); torch.save(obj, p); np.save(p, obj); model.save_pretrained(p); save_file(obj, p)
    os.open(p, os.O_WRONLY | os.O_CREAT); open(p); p.read_text(); json.dumps(obj); "a".replace("a", "b")
"""
    calls = [_writes(node) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    assert [c for c in calls if c] == ["open", "open", "write_text", "json.dump", "shutil.copyfile", "replace",
                                       "rename", "save", "save", "save_pretrained", "save_file", "os.open"]


def test_every_jsonl_append_goes_through_the_one_appender():
    """No module opens a file for appending but the writer: the diagnostics file glued a resumed run's first row
    onto a killed run's torn line when it appended by itself (red team 9, row 48)."""
    assert not appends(), ("appends outside savi_plugin.data.writer (use JsonlAppender, which cuts a torn last "
                           "line on reopen):\n" + "\n".join(appends()))


def test_the_append_scanner_finds_each_kind_of_append():
    source = """
def f(p):
    open(p, "a"); open(p, mode="ab"); p.open("a"); os.open(p, os.O_WRONLY | os.O_APPEND); open(p, "w"); open(p)
    av.open(p, "r"); os.open(p, os.O_RDONLY)
"""
    found = [_appends(node) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    assert found.count(True) == 4


#: calls that start a program: ``subprocess``'s and ``os``'s
_STARTS = {("subprocess", name) for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput",
                                             "getstatusoutput")} | {("os", name) for name in (
    "system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "spawnl", "spawnle", "spawnlp", "spawnlpe",
    "spawnv", "spawnve", "spawnvp", "spawnvpe", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
    "execvpe")}
#: the one function that starts a child process (it dies with savi, and holds savi's output locks while it lives)
CHILD_LAUNCHER = ("data/outputs/children.py", "start_child")


def child_starts(source: str) -> list[tuple[str, int]]:
    """``(enclosing function, line)`` of each call in ``source`` that starts a program, by module attribute
    (``subprocess.Popen``) or by a name imported from the module (``from subprocess import run``)."""
    tree = ast.parse(source)
    imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module in ("subprocess", "os") for alias in node.names
                if (node.module, alias.name) in _STARTS}
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                func = child.func
                if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                        and (func.value.id, func.attr) in _STARTS) or (isinstance(func, ast.Name)
                                                                      and func.id in imported):
                    found.append((function, child.lineno))
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_every_child_process_is_started_by_the_one_launcher():
    """A child started anywhere else (lmms-eval by ``savi eval suite`` and ``savi align``) outlived a ``savi``
    killed with SIGKILL and wrote on into the output a second job then took over (red team 23 E, rows 12 and 48)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        found += [f"savi_plugin/{module}:{line} in {fn}()" for fn, line in child_starts(path.read_text("utf-8"))
                  if (module, fn) != CHILD_LAUNCHER]
    assert not found, ("processes started outside savi_plugin.data.outputs.start_child (which has the child die "
                       "with savi and hold its output locks):\n" + "\n".join(found))
    assert [fn for fn, _ in child_starts((PACKAGE / CHILD_LAUNCHER[0]).read_text("utf-8"))] == [CHILD_LAUNCHER[1]]


def test_the_child_scanner_finds_each_way_to_start_a_program():
    source = """
from subprocess import check_output as co
def f(cmd):
    subprocess.Popen(cmd); subprocess.run(cmd); subprocess.call(cmd); co(cmd); os.system("ls"); os.execv(cmd[0], cmd)
    os.posix_spawn(cmd[0], cmd, {}); proc.wait(); os.getpid(); run(cmd)
"""
    assert [line for _, line in child_starts(source)] == [4] * 6 + [5]
