"""The prepared copy we write into the Hugging Face datasets cache is the one ``datasets`` reloads offline: its
``Cache`` builder (what ``load_dataset`` falls back on with ``HF_HUB_OFFLINE=1``) finds it by repo id and config and
reads back the records."""

import pytest

from savi_plugin.eval.hf_cache import (
    cached_split_dirs,
    datasets_cache_dir,
    hf_home,
    write_cached_split,
)


def _reload(cache, repo_id, config, split):
    from datasets.packaged_modules.cache.cache import Cache

    builder = Cache(cache_dir=str(cache), repo_id=repo_id, dataset_name=repo_id.split("/")[1], config_name=config,
                    version="auto", hash="auto")
    builder.download_and_prepare()
    return builder.as_dataset(split=split)


def test_written_split_is_what_the_offline_cache_builder_reloads(tmp_path):
    records = [{"video": "a.mp4", "question": "Which?", "candidates": ["x", "y"], "answer": "y"},
               {"video": "b.mp4", "question": "Where?", "candidates": ["u", "v"], "answer": "u"}]
    assert cached_split_dirs(tmp_path, "OpenGVLab/MVBench", "action_antonym") == []
    arrow = write_cached_split(tmp_path, "OpenGVLab/MVBench", "action_antonym", "train", records)
    assert arrow.name == "mv_bench-train.arrow" and arrow.parent.parent.parent.name == "action_antonym"
    write_cached_split(tmp_path, "OpenGVLab/MVBench", "action_antonym", "test", records[:1])  # a second split
    assert [dict(r) for r in _reload(tmp_path, "OpenGVLab/MVBench", "action_antonym", "train")] == records
    assert len(_reload(tmp_path, "OpenGVLab/MVBench", "action_antonym", "test")) == 1
    assert len(cached_split_dirs(tmp_path, "OpenGVLab/MVBench", "action_antonym")) == 1
    assert cached_split_dirs(tmp_path, "OpenGVLab/MVBench", "action_count") == []
    write_cached_split(tmp_path, "lmms-eval/Video-MME", None, "test", records)  # no config name: "default"
    assert [r["question"] for r in _reload(tmp_path, "lmms-eval/Video-MME", None, "test")] == ["Which?", "Where?"]


@pytest.mark.parametrize(("env", "expected"), [
    ({"HF_HOME": "/h"}, "/h/datasets"),
    ({"HF_HOME": "/h", "HF_DATASETS_CACHE": "/d"}, "/d"),
    ({"HF_HOME": "/h", "HF_DATASETS_CACHE": "/d", "LMMS_EVAL_DATASETS_CACHE": "/l"}, "/l"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/huggingface/datasets"),
])
def test_datasets_cache_follows_lmms_evals_rule(env, expected):
    assert str(datasets_cache_dir(env)) == expected
    assert hf_home({"HF_HOME": "/h"}) == "/h"
