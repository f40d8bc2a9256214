"""Preference-data generators: VideoSAVi self-critique and RRPO perturbation (registered as entry points
``savi_plugin.generators``: ``videosavi``, ``rrpo``), and the runner that makes them batched, resumable,
sharded and reported.

    from savi_plugin.generators import run_generation, merge_shards
    report = run_generation(generator="rrpo", model="path/to/model", inputs="samples.jsonl",
                            output="pairs.jsonl", num_frames=16, batch_size=8, seed=0)
"""

from savi_plugin.generators.base import BatchContext, Generator, Outcome, WorkItem
from savi_plugin.generators.inputs import InputItem, load_inputs
from savi_plugin.generators.merge import merge_shards
from savi_plugin.generators.runner import (find_shards, parse_shard, run_generation, shard_items,
                                          shard_output_path)

__all__ = ["BatchContext", "Generator", "Outcome", "WorkItem", "InputItem", "load_inputs", "find_shards",
           "merge_shards", "parse_shard", "run_generation", "shard_items", "shard_output_path"]
