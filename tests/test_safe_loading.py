"""Nothing we load may execute code the user did not ask for; record paths may not leave a data root.

Static: an AST scan of every module of ``savi_plugin/`` (and the shipped recipes / eval task folders) for
``yaml.load`` without a safe loader, ``torch.load`` without ``weights_only=True``, pickle-family imports,
``numpy.load(allow_pickle=True)``, ``eval``/``exec``/``compile``, ``shell=True`` and ``trust_remote_code=True``.
Dynamic: ``trust_remote_code`` stays False unless the user passes it (load_backend, the CLI, the lmms-eval
wrapper's model_args), and :mod:`savi_plugin.data.paths` refuses ``..``, absolute paths and symlinks that
leave the data root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import savi_plugin
from savi_plugin.data import DataError
from savi_plugin.data.paths import PathEscapeError, is_within, resolve_video_path

PACKAGE = Path(savi_plugin.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> str:
    """``yaml.load`` for ``Attribute(Name('yaml'), 'load')``; '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str, filename: str = "<string>") -> list[str]:
    """Every unsafe loading construct in ``source``, as ``file:line: what``."""
    problems = []
    tree = ast.parse(source, filename)
    safe_loaders = SAFE_YAML_LOADERS | {  # a class of this file that subclasses a safe loader (adds constructors)
        node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
        and any(_dotted(base).split(".")[-1] in SAFE_YAML_LOADERS for base in node.bases)}
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            problems += [f"{where}: imports {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in PICKLE_MODULES:
                problems.append(f"{where}: imports from {node.module}")
            if node.module == "yaml":
                problems += [f"{where}: imports yaml.{a.name}" for a in node.names
                             if a.name in {"load", "load_all", "unsafe_load", "full_load", "Loader", "UnsafeLoader",
                                           "FullLoader"}]
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in {"eval", "exec", "compile"}:
                problems.append(f"{where}: calls {name}()")
            elif name.endswith("yaml.load") or name.endswith("yaml.load_all") or name == "load_all":
                loader = _keyword(node, "Loader") if _keyword(node, "Loader") is not None else (
                    node.args[1] if len(node.args) > 1 else None)
                if loader is None or _dotted(loader).split(".")[-1] not in safe_loaders:
                    problems.append(f"{where}: {name} without a safe Loader")
            elif name.split(".")[-1] in {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"} and \
                    name.startswith("yaml"):
                problems.append(f"{where}: calls {name}")
            elif name == "torch.load":
                if not _is_true(_keyword(node, "weights_only")):
                    problems.append(f"{where}: torch.load without weights_only=True")
            elif name.split(".")[-1] == "load" and name.split(".")[0] in {"np", "numpy"}:
                if _is_true(_keyword(node, "allow_pickle")):
                    problems.append(f"{where}: {name}(allow_pickle=True)")
            if _is_true(_keyword(node, "trust_remote_code")):
                problems.append(f"{where}: {name or 'a call'}(trust_remote_code=True)")
            if _is_true(_keyword(node, "shell")):
                problems.append(f"{where}: {name}(shell=True)")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults))
            defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
            if "trust_remote_code" in defaults and not (isinstance(defaults["trust_remote_code"], ast.Constant)
                                                         and defaults["trust_remote_code"].value is False):
                problems.append(f"{where}: {node.name}(trust_remote_code=...) does not default to False")
    return problems


def test_the_scanner_finds_what_it_looks_for():
    bad = "\n".join([
        "import pickle", "from dill import loads", "import yaml", "yaml.load(open('x'))",
        "yaml.load(s, Loader=yaml.FullLoader)", "yaml.unsafe_load(s)", "import torch", "torch.load('m.pt')",
        "torch.load('m.pt', weights_only=False)", "import numpy as np", "np.load('a.npy', allow_pickle=True)",
        "eval('1')", "exec('x=1')", "f(trust_remote_code=True)", "subprocess.run('ls', shell=True)",
        "def g(path, trust_remote_code=True): pass",
    ])
    assert len(unsafe_calls(bad)) == 13, unsafe_calls(bad)
    good = "\n".join([
        "import yaml", "yaml.safe_load(s)", "yaml.load(s, Loader=yaml.SafeLoader)", "import torch",
        "torch.load('m.pt', map_location='cpu', weights_only=True)", "import numpy as np", "np.load('a.npy')",
        "model.eval()", "f(trust_remote_code=False)", "def g(path, *, trust_remote_code=False): pass",
        "s = 'exec(\"x\")'", "class L(yaml.SafeLoader): pass", "yaml.load(s, Loader=L)",
    ])
    assert unsafe_calls(good) == []


def test_the_package_loads_nothing_unsafely():
    assert len(SOURCES) > 40  # the scan really covers the package
    problems = [p for path in SOURCES for p in unsafe_calls(path.read_text(encoding="utf-8"), str(path))]
    assert problems == [], "\n".join(problems)


def test_shipped_yaml_has_no_python_tags():
    """Recipes, prompts and task YAMLs are data: no ``!!python/...`` tag (lmms-eval's ``!function`` is its own)."""
    root = PACKAGE.parent
    files = [p for folder in (root / "recipes", root / "eval_tasks", PACKAGE) for p in folder.rglob("*.yaml")]
    assert files
    offenders = [str(p) for p in files if "!!python" in p.read_text(encoding="utf-8")]
    assert offenders == []


# ---------------------------------------------------------------------------------------------- trust_remote_code
class _Stop(Exception):
    pass


@pytest.fixture()
def spy_load_backend(monkeypatch):
    """Record the keyword arguments every ``savi_plugin.models.load_backend`` call gets, then stop."""
    import savi_plugin.models

    calls = []

    def spy(path, backend=None, **kwargs):
        calls.append(kwargs)
        raise _Stop

    monkeypatch.setattr(savi_plugin.models, "load_backend", spy)
    return calls


@pytest.fixture()
def spy_transformers(monkeypatch):
    """Record ``trust_remote_code`` of every processor/model ``from_pretrained`` call, then load for real."""
    import transformers
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    seen = []

    def wrap(owner, attribute):
        original = getattr(owner, attribute).__func__

        def recorder(cls, *args, **kwargs):
            seen.append((f"{cls.__name__}.{attribute}", kwargs.get("trust_remote_code", False)))
            return original(cls, *args, **kwargs)

        monkeypatch.setattr(owner, attribute, classmethod(recorder))

    wrap(transformers.AutoProcessor, "from_pretrained")
    wrap(_BaseAutoModelClass, "from_pretrained")
    wrap(transformers.PreTrainedModel, "from_pretrained")
    return seen


@pytest.mark.parametrize("asked", [False, True])
def test_load_backend_trusts_remote_code_only_when_asked(asked, tiny_llava_onevision, spy_transformers):
    from savi_plugin.models import load_backend

    kwargs = {"trust_remote_code": True} if asked else {}
    load_backend(tiny_llava_onevision, num_frames=4, **kwargs)
    assert spy_transformers, "no from_pretrained call was seen"
    assert {trusted for _, trusted in spy_transformers} == {asked}, spy_transformers


def test_generate_cli_and_run_training_never_ask_for_remote_code(spy_load_backend, tiny_llava_onevision,
                                                                synthetic_samples, tmp_path):
    from savi_plugin.cli import main
    from savi_plugin.training.run import run_training

    manifest = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    # the spy stops the command at the load; savi's error boundary turns that into one line and status 1
    assert main(["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                 "--output", str(tmp_path / "pairs.jsonl"), "--no-progress", "--device", "cpu"]) == 1
    with pytest.raises(_Stop):
        run_training(model=tiny_llava_onevision, data=tmp_path / "pairs.jsonl", output_dir=tmp_path / "out",
                     training={"use_cpu": True}, allow_incomplete_data=True)  # the stopped run above is unfinished
    assert len(spy_load_backend) == 2
    assert all(call.get("trust_remote_code", False) is False for call in spy_load_backend), spy_load_backend


@pytest.mark.parametrize("value, expected", [(None, False), (False, False), ("False", False), ("false", False),
                                             ("0", False), (0, False), ("no", False), (True, True),
                                             ("True", True), ("true", True), (1, True)])
def test_lmms_eval_model_args_trust_remote_code_is_strict(value, expected, spy_load_backend):
    """``--model_args trust_remote_code=no`` reaches us as the string "no": it must not mean True."""
    from lmms_eval.utils import simple_parse_args_string

    from savi_plugin.eval.model import SaviVideo

    args = {"pretrained": "/nowhere"}
    if value is not None:
        args.update(simple_parse_args_string(f"trust_remote_code={value}"))
    with pytest.raises(_Stop):
        SaviVideo(**args)
    assert spy_load_backend[-1]["trust_remote_code"] is expected


def test_lmms_eval_model_args_trust_remote_code_rejects_nonsense(spy_load_backend):
    from savi_plugin.eval.model import SaviVideo
    from savi_plugin.eval.settings import SettingError

    with pytest.raises(SettingError, match="trust_remote_code must be true or false, got 'maybe'"):
        SaviVideo(pretrained="/nowhere", trust_remote_code="maybe")
    assert spy_load_backend == []


# ---------------------------------------------------------------------------------------------- data root
@pytest.fixture()
def tree(tmp_path):
    """root/{a.mp4, sub/b.mp4, in_link.mp4 -> sub/b.mp4, out_link.mp4 -> ../outside/s.mp4}, outside/s.mp4."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    for path in (root / "a.mp4", root / "sub" / "b.mp4", outside / "s.mp4"):
        path.write_bytes(b"x")
    (root / "in_link.mp4").symlink_to("sub/b.mp4")
    (root / "out_link.mp4").symlink_to(Path("..") / "outside" / "s.mp4")
    (root / "out_dir").symlink_to(outside, target_is_directory=True)
    (tmp_path / "root_link").symlink_to(root, target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize("video", ["a.mp4", "sub/b.mp4", "sub/../a.mp4", "./sub/b.mp4", "in_link.mp4",
                                   "{root}/a.mp4", "new/not_yet.mp4"])
def test_paths_inside_the_data_root_are_accepted(tree, video):
    root = tree / "root"
    path = resolve_video_path(video.format(root=root), root, confine=True, file="pairs.jsonl", line=3)
    assert is_within(path, root)
    assert path == (Path(video.format(root=root)) if video.startswith("{") else root / video)


def test_a_home_folder_path_is_refused_whatever_the_data_root(tree):
    """``~/.ssh/id_rsa`` is refused before any root is asked: a stored path is never read from a home folder."""
    from savi_plugin.data import DataError

    for confine in (True, False):
        with pytest.raises(DataError, match=r"^pairs\.jsonl:3:video: path '~/\.ssh/id_rsa' starts with '~'"):
            resolve_video_path("~/.ssh/id_rsa", tree / "root", confine=confine, file="pairs.jsonl", line=3)


@pytest.mark.parametrize("video", ["../outside/s.mp4", "sub/../../outside/s.mp4", "{outside}/s.mp4", "/etc/passwd",
                                   "out_link.mp4", "out_dir/s.mp4", ".."])
def test_paths_leaving_the_data_root_are_refused(tree, video):
    root = tree / "root"
    with pytest.raises(PathEscapeError) as err:
        resolve_video_path(video.format(outside=tree / "outside"), root, confine=True, file="pairs.jsonl", line=3)
    exc = err.value
    assert (exc.file, exc.line, exc.field, exc.reason) == ("pairs.jsonl", 3, "video", "outside_data_root")
    assert "outside the data root" in str(exc) and str(exc).startswith("pairs.jsonl:3:video: ")


def test_a_symlinked_data_root_works_and_no_root_confines_nothing(tree):
    link = tree / "root_link"
    assert resolve_video_path("a.mp4", link, confine=True) == link / "a.mp4"
    with pytest.raises(PathEscapeError):
        resolve_video_path("out_link.mp4", link, confine=True)
    # Without a data root the user drew no boundary: relative paths join the base, absolute paths stay.
    assert resolve_video_path("../outside/s.mp4", tree / "root") == tree / "root" / "../outside/s.mp4"
    assert resolve_video_path("/etc/passwd", tree / "root") == Path("/etc/passwd")


@pytest.mark.parametrize("video, message", [("", "non-empty"), ("   ", "non-empty"), (7, "non-empty"),
                                            ("a\x00.mp4", "NUL byte")])
def test_malformed_paths_name_the_record(video, message, tmp_path):
    with pytest.raises(DataError, match=message) as err:
        resolve_video_path(video, tmp_path, file="m.jsonl", line=9, field="media_path")
    assert (err.value.line, err.value.field) == (9, "media_path")


def test_paths_module_is_pure():
    """No I/O beyond resolving symlinks: it never opens, creates or lists anything."""
    source = (PACKAGE / "data" / "paths.py").read_text(encoding="utf-8")
    for call in ("open(", "mkdir", "iterdir", "glob(", "unlink", "write_", "stat("):
        assert call not in source, call
