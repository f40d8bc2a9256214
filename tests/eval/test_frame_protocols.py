"""Each protocol samples frames the way its reference does, end to end: the fixture's bounded MVBench subtasks
(records with start/end, full videos in the official folders, trimmed clips for even records) resolve per
protocol, docs carry the frame rule and bound, and a real lmms-eval run decodes exactly the bounded midpoint
frames (official, RRPO), the bounded uniform frames (savi) or none of the full videos (lmms). Bad bounds are
one-line errors naming file, record and field (or file and bound)."""

import glob
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lmms_eval.utils import load_yaml_config

from savi_plugin.eval.data import (
    EvalDataError,
    benchmark,
    load_local_records,
    locate_video,
    video_base,
)
from savi_plugin.eval.fixtures import build_fixture, offline_env
from savi_plugin.eval.model import SaviVideo, frames_from_directory
from savi_plugin.eval.protocols import PROTOCOLS
from savi_plugin.eval.registration import tasks_path
from savi_plugin.eval.task import SaviVideoTask
from savi_plugin.video import VideoDecodeError, midpoint_indices, uniform_indices
from tests.builders import LMMS_EVAL

SUBTASKS = ("action_sequence", "episodic_reasoning")
CLIP = 8  # frames of each question's clip (the fixture's default num_frames)
TASKS = {  # lmms-eval task -> (subtask, protocol)
    "savi_mvbench_official_action_sequence": ("action_sequence", "official"),
    "savi_mvbench_rrpo_episodic_reasoning": ("episodic_reasoning", "rrpo"),
    "savi_mvbench_lmms_action_sequence": ("action_sequence", "lmms"),
    "savi_mvbench_action_sequence": ("action_sequence", "savi"),
}


def _yaml(task: str) -> str:
    protocol = TASKS[task][1]
    return f"mvbench/{'' if protocol == 'savi' else protocol + '/'}{task}.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("frame_protocols")
    return build_fixture(root, "mvbench", 2, subtasks=SUBTASKS)


def test_protocols_state_their_frame_rule():
    rules = {name: (p.frames, p.bounds, p.num_frames) for name, p in PROTOCOLS["mvbench"].items()}
    assert rules == {"savi": ("uniform", True, None), "lmms": ("lmms", False, 32),
                     "official": ("midpoints", True, 16), "rrpo": ("midpoints", True, 64)}
    assert all(not p.bounds for b in ("egoschema", "perceptiontest") for p in PROTOCOLS[b].values())


@pytest.mark.parametrize("task", list(TASKS))
def test_docs_carry_rule_and_bound_per_protocol(monkeypatch, data, task):
    sub, protocol = TASKS[task]
    monkeypatch.setenv("SAVI_DATA_ROOT", str(data.root))
    docs = list(SaviVideoTask(config=load_yaml_config(f"{tasks_path()}/{_yaml(task)}", mode="full")).test_docs())
    records = data.records[f"savi_mvbench_{sub}"]
    trimmed = {"action_sequence": "star/Charades_segment", "episodic_reasoning": "tvqa/video_fps3_hq_segment"}[sub]
    full = {"action_sequence": "star/Charades_v1_480", "episodic_reasoning": "tvqa/frames_fps3_hq"}[sub]
    assert [d["savi_frames"] for d in docs] == [PROTOCOLS["mvbench"][protocol].frames] * 2
    # doc 0 has a trimmed clip: read without a bound under every protocol
    assert docs[0]["savi_video"] == str(data.root / "mvbench/video" / trimmed / records[0]["video"])
    assert docs[0]["savi_bound"] is None and docs[0]["savi_video_found"]
    # doc 1 has only the full source video: used with its bound, except by lmms (lmms-eval never looks there)
    if protocol == "lmms":
        assert not docs[1]["savi_video_found"] and docs[1]["savi_bound"] is None
    else:
        assert docs[1]["savi_video"] == str(data.root / "mvbench/video" / full / records[1]["video"])
        assert docs[1]["savi_bound"] == [records[1]["start"], records[1]["end"]]


def test_hub_segment_name_is_a_trimmed_clip_candidate(tmp_path):
    spec = benchmark("mvbench")
    doc = {"video": "USNP1.mp4", "start": 1.2999999999999998, "end": 15.4}
    clip = tmp_path / "star/Charades_segment/USNP1_1.2999999999999998_15.4.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"x")
    (tmp_path / "star/Charades_v1_480").mkdir(parents=True)
    (tmp_path / "star/Charades_v1_480/USNP1.mp4").write_bytes(b"x")
    found = locate_video(spec, doc, tmp_path, "action_sequence", bounds=True)
    assert (found.path, found.found, found.bound) == (str(clip), True, None)  # a trimmed clip: no bound
    clip.unlink()
    found = locate_video(spec, doc, tmp_path, "action_sequence", bounds=True)
    assert found.path.endswith("star/Charades_v1_480/USNP1.mp4") and found.bound == [1.2999999999999998, 15.4]
    assert not locate_video(spec, doc, tmp_path, "action_sequence", bounds=False).found
    assert not locate_video(spec, {"video": "USNP1.mp4"}, tmp_path, "action_sequence", bounds=True).found


@pytest.mark.parametrize("change, where, message", [
    ({"start": "1.5"}, "start", "start is not a number"), ({"end": float("nan")}, "end", "end is not finite"),
    ({"start": -1.0}, "start", "start is negative"), ({"end": 1.0, "start": 2.0}, "end", "end is before start"),
    ({"end": None}, "end", r"missing \(start is given\)"), ({"start": True}, "start", "start is not a number"),
])
def test_bad_record_bounds_name_file_record_and_field(tmp_path, change, where, message):
    fx = build_fixture(tmp_path, "mvbench", 2, subtasks=("action_sequence",))
    path = tmp_path / "mvbench/json/action_sequence.json"
    records = fx.records["savi_mvbench_action_sequence"]
    records[1] = {k: v for k, v in {**records[1], **change}.items() if v is not None}
    path.write_text(json.dumps(records))
    with pytest.raises(EvalDataError) as info:
        load_local_records(tmp_path, benchmark("mvbench"), "action_sequence", None)
    assert re.fullmatch(f"{re.escape(str(path))}:2:{where}: (bound .*: )?{message}", str(info.value)), info.value


def test_records_without_bounds_still_load(tmp_path):
    fx = build_fixture(tmp_path, "mvbench", 2, subtasks=("action_sequence",))
    plain = [{k: v for k, v in r.items() if k not in ("start", "end")} for r in fx.records["savi_mvbench_action_sequence"]]
    (tmp_path / "mvbench/json/action_sequence.json").write_text(json.dumps(plain))
    docs = load_local_records(tmp_path, benchmark("mvbench"), "action_sequence", None)
    spec = benchmark("mvbench")
    found = locate_video(spec, docs[1], video_base(spec, tmp_path), "action_sequence", bounds=True)
    assert not found.found and found.bound is None  # a full video is never read without its bound


def test_frame_folder_midpoints_and_bound(tmp_path):
    import numpy as np
    from PIL import Image

    for k in range(1, 31):  # frames 00001.jpg .. 00030.jpg, grey level 8 * k
        Image.fromarray(np.full((8, 10, 3), 8 * k, np.uint8)).save(tmp_path / f"{k:05d}.jpg", quality=100)

    def numbers(frames):
        return [round(float(f.mean()) / 8) for f in frames]

    assert numbers(frames_from_directory(tmp_path, 8, sampling="midpoints")) == midpoint_indices(8, 3, 30, None, 1).tolist()
    assert numbers(frames_from_directory(tmp_path, 4, sampling="midpoints", bound=(2, 4))) == [6, 8, 9, 10]
    assert numbers(frames_from_directory(tmp_path, 3, bound=[2.0, 4.0])) == [6, 9, 12]  # uniform within 6..12
    assert numbers(frames_from_directory(tmp_path, 3)) == (1 + uniform_indices(30, 3)).tolist()
    with pytest.raises(VideoDecodeError, match=r"bound \(11.0, 12.0\) s is outside the video \(frames 1..30 at 3 fps"):
        frames_from_directory(tmp_path, 4, sampling="midpoints", bound=(11.0, 12.0))


def test_a_frame_folder_meets_the_caps_and_the_short_clip_rule_of_a_video_file(tmp_path, monkeypatch):
    """The frame-folder route skipped the decode budget and scored a folder shorter than num_frames (red team 3)."""
    import numpy as np
    from PIL import Image

    for k in range(1, 31):
        Image.fromarray(np.full((32, 32, 3), k, np.uint8)).save(tmp_path / f"{k:05d}.jpg")
    with pytest.raises(VideoDecodeError, match="30 frame\\(s\\), fewer than num_frames=31"):
        frames_from_directory(tmp_path, 31)
    assert len(frames_from_directory(tmp_path, 31, sampling="midpoints")) == 31  # the reference's rule repeats
    monkeypatch.setenv("SAVI_MAX_DECODED_BYTES", "4KiB")  # 4 frames of 32x32 RGB are 12 KiB
    with pytest.raises(VideoDecodeError, match="above the per-clip budget"):
        frames_from_directory(tmp_path, 4)
    monkeypatch.delenv("SAVI_MAX_DECODED_BYTES")
    monkeypatch.setenv("SAVI_MAX_FRAME_PIXELS", "1000")
    with pytest.raises(VideoDecodeError, match="32x32 is above the cap of 1000 pixels"):
        frames_from_directory(tmp_path, 4)


def test_bound_outside_the_video_is_a_logged_bad_video(tiny_llava_onevision, data):
    from savi_plugin.eval.bad_videos import is_bad

    model = SaviVideo(pretrained=str(tiny_llava_onevision), num_frames=4)
    record = data.records["savi_mvbench_action_sequence"][1]
    video = str(data.root / "mvbench/video/star/Charades_v1_480" / record["video"])
    model.task_dict = {"t": {"train": [{"savi_video": video, "savi_frames": "midpoints", "savi_num_frames": 16,
                                        "savi_bound": [30.0, 40.0]}]}}
    assert model._visual_for(lambda d: [d["savi_video"]], "t", "train", 0, "-") is None
    assert is_bad(video)
    with pytest.raises(VideoDecodeError) as info:
        model.load_visual([video], 16, sampling="midpoints", bound=[30.0, 40.0])
    assert str(info.value) == (f"{video}: cannot decode video: bound (30.0, 40.0) s is outside the video "
                               f"(frames 0..{12 + CLIP + 6 - 1} at 8 fps, 3.250 s)")


def test_fps_under_a_rule_that_takes_a_frame_count_is_said_once(tiny_llava_onevision, data):
    """Pass 17 B #21: ``fps`` was accepted and silently not applied under the tasks' own frame rules."""
    from loguru import logger

    lines = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO", format="{message}")
    try:
        model = SaviVideo(pretrained=str(tiny_llava_onevision), num_frames=4, fps=2.0, max_frames=3)
        record = data.records["savi_mvbench_action_sequence"][0]
        video = str(data.root / "mvbench/video/star/Charades_v1_480" / record["video"])
        for _ in range(2):
            assert len(model.load_visual([video], 4, sampling="midpoints")) == 4
        assert len(model.load_visual([video], 4)) <= 3  # uniform: fps applies, capped at max_frames
    finally:
        logger.remove(sink)
    # pass 18 C #6: the start line said "32 frames" while every clip was sampled at fps
    assert any("frames at fps=2 (at most 3) where a task samples uniformly, else 4, rank" in line for line in lines)
    said = [line for line in lines if "not used for" in line]
    assert said == ["savi_video: fps=2.0, max_frames=3: not used for frame rule 'midpoints', which samples "
                    "num_frames frames\n"], lines


@pytest.fixture(scope="module")
def run(tmp_path_factory, data, tiny_llava_onevision):
    tmp = tmp_path_factory.mktemp("frame_protocols_run")
    out = tmp / "out"
    proc = subprocess.run(
        [*LMMS_EVAL, "--model", "savi_video", "--model_args", f"pretrained={tiny_llava_onevision},num_frames=4",
         "--tasks", ",".join(TASKS), "--limit", "2", "--gen_kwargs", "max_new_tokens=2", "--output_path", str(out),
         "--log_samples", "--verbosity", "DEBUG"],
        env=offline_env(data.root, tmp / "hf"), capture_output=True, text=True, timeout=600, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    samples = {}
    for task in TASKS:
        path = glob.glob(str(out / "**" / f"*_samples_{task}.jsonl"), recursive=True)[0]
        samples[task] = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return samples, log


def _decoded(log: str, path: str) -> list[tuple[str, list[int], list[float] | None]]:
    """``(rule, frame numbers, bound)`` for each decode savi_video logged for ``path``."""
    found = re.findall(rf"savi_video: {re.escape(str(path))}: (\w+) frames (\[[0-9, ]*\])(?: within (\[[^\]]*\]) s)?", log)
    return [(rule, json.loads(frames), json.loads(bound) if bound else None) for rule, frames, bound in found]


def test_lmms_eval_run_decodes_each_protocols_frames(run, data):
    samples, log = run
    video = data.root / "mvbench/video"
    seq = data.records["savi_mvbench_action_sequence"]
    tvqa = data.records["savi_mvbench_episodic_reasoning"]
    full_frames = 12 + CLIP + 6  # record 1: grey lead of 12 frames, the clip, 6 grey frames
    charades_full = video / "star/Charades_v1_480" / seq[1]["video"]
    charades_clip = video / "star/Charades_segment" / seq[0]["video"]

    # official: 16 midpoints within record 1's bound on the full Charades-style video (8 fps): clip frames 12..19
    official = midpoint_indices(16, 8, full_frames - 1, (1.5, 2.375)).tolist()
    assert min(official) == 12 and max(official) == 19 and len(official) == 16
    # savi: the model's 4 uniform frames within the same bound
    savi = (12 + uniform_indices(CLIP, 4)).tolist()
    assert savi == [12, 14, 17, 19]
    assert sorted(_decoded(log, charades_full)) == [("midpoints", official, [1.5, 2.375]),
                                                    ("uniform", savi, [1.5, 2.375])]  # lmms never reads it

    # record 0's trimmed clip, no bound: official 16 midpoints over its 8 frames, savi 4 uniform, lmms 32 as
    # lmms-eval's LLaVA-OneVision wrapper takes them (linspace truncated to int: the 8 frames, repeated)
    assert sorted(_decoded(log, charades_clip)) == sorted([
        ("midpoints", midpoint_indices(16, 8, CLIP - 1).tolist(), None),
        ("lmms_llava_onevision", np.linspace(0, CLIP - 1, 32, dtype=int).tolist(), None),
        ("uniform", uniform_indices(CLIP, 4).tolist(), None)])

    # rrpo: 64 midpoints in the TVQA-style frame folder (3 fps, frames numbered from 1) within 13..20
    rrpo = midpoint_indices(64, 3, full_frames, (4.3333, 6.6667), first_idx=1).tolist()
    assert min(rrpo) == 13 and max(rrpo) == 20
    assert _decoded(log, video / "tvqa/frames_fps3_hq" / tvqa[1]["video"]) == [("midpoints", rrpo, [4.3333, 6.6667])]

    # lmms: no full videos; record 1 has no trimmed clip, so it is a missing video, as for lmms-eval's own task
    assert [s["missing_video"] for s in samples["savi_mvbench_lmms_action_sequence"]] == [0, 1]
    assert all(s["bad_video"] == 0 for task in TASKS for s in samples[task])
