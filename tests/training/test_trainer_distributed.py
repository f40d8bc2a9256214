"""Two-process DDP (gloo, CPU): the preference forward goes through the DDP wrapper, so gradients are synchronised.

The trainer calls the decoder directly (hidden states, not logits); under DDP that would skip DDP's gradient
reduction and silently train each rank on its own shard. The trainer therefore routes the call through the
wrapper. Here both ranks see different pairs at every step and must still end with identical weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.builders import free_port, repo_pythonpath, write_answer_pairs

RUN = textwrap.dedent("""
    import json, os, sys
    from savi_plugin.models import load_backend
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.run import apply_lora
    from savi_plugin.training.trainer import RRPOTrainer

    model, data, out = sys.argv[1:4]
    seen = []

    class Recording(RRPOTrainer):
        def compute_loss(self, model, inputs, **kwargs):
            seen.append(list(inputs.pair_ids))
            return super().compute_loss(model, inputs, **kwargs)

    config = PreferenceConfig(output_dir=out, num_frames=4, per_device_train_batch_size=2, max_steps=3,
                              logging_steps=1, learning_rate=5e-3, save_strategy="no", use_cpu=True, seed=3,
                              disable_tqdm=True)
    backend = load_backend(model, num_frames=4)
    apply_lora(backend, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=3)
    trainer = Recording(backend, config, train_dataset=data)
    trainer.train()
    params = {n: p.detach().double().sum().item() for n, p in backend.model.named_parameters() if p.requires_grad}
    rank = os.environ["RANK"]
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"wrapper": type(trainer.model_wrapped).__name__, "seen": seen, "params": params,
                   "log": trainer.state.log_history}, fh)
    from savi_plugin.training.distributed import close_process_group
    close_process_group()  # as PyTorch advises: left to exit, a rank can abort (SIGABRT)
""")


def test_ddp_ranks_train_on_different_pairs_and_stay_in_sync(tiny_llava_onevision, synthetic_samples, tmp_path):
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:8], rotate=False)
    script = tmp_path / "run.py"
    script.write_text(RUN)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": repo_pythonpath(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={port}", str(script), str(tiny_llava_onevision), str(data), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["wrapper"] for r in ranks] == ["DistributedDataParallel"] * 2
    for step in range(3):  # the ranks never see the same pair in a step
        assert not set(ranks[0]["seen"][step]) & set(ranks[1]["seen"][step])
    trained = [n for n in ranks[0]["params"] if "lora_B" in n]
    assert trained and all(abs(ranks[0]["params"][n]) > 0 for n in trained)  # B started at zero: it moved
    for name, value in ranks[0]["params"].items():
        assert abs(value - ranks[1]["params"][name]) < 1e-9, name
    # metrics are reduced across ranks at logging time: both ranks log the same numbers
    logged = [[h["rewards/margins"] for h in r["log"] if "rewards/margins" in h] for r in ranks]
    assert logged[0] == logged[1] and len(logged[0]) == 3


SKIP_RUN = textwrap.dedent("""
    import json, os, sys
    import torch
    import torch.distributed as dist
    import savi_plugin.training.dataset as dataset_module
    from savi_plugin.models import load_backend
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.distributed import every_rank_report
    from savi_plugin.training.trainer import RRPOTrainer
    from tests.builders import random_lora_backend

    model, data, torn, out = sys.argv[1:5]
    probes = []
    real_probe = dataset_module.probe_video
    dataset_module.probe_video = lambda *a, **k: probes.append(str(a[0])) or real_probe(*a, **k)  # counts, then probes
    seen = []

    class Recording(RRPOTrainer):
        def compute_loss(self, model, inputs, **kwargs):
            seen.append(list(inputs.pair_ids))
            return super().compute_loss(model, inputs, **kwargs)

    config = PreferenceConfig(output_dir=out, num_frames=4, per_device_train_batch_size=1, max_steps=2,
                              logging_steps=1, learning_rate=5e-3, save_strategy="no", use_cpu=True, seed=3,
                              disable_tqdm=True, bad_records="skip", train_sampling_strategy="sequential")
    backend = random_lora_backend(model, r=4, alpha=8, seed=3)  # policy != reference: losses differ
    trainer = Recording(backend, config, train_dataset=data)
    initial = {}  # each pair's loss at the initial weights (what step 1 must log for the pairs it trained on)
    with torch.no_grad():
        for i in range(len(trainer.train_dataset)):
            batch = trainer.data_collator([trainer.train_dataset[i]])
            loss, _, _ = trainer.objective(trainer.statistics(backend.model, batch), batch)
            initial[batch.pair_ids[0]] = loss.item()
    dist.barrier()
    if dist.get_rank() == 0:
        with open(torn, "wb") as fh:  # the video breaks after loading: only decoding finds it
            fh.write(b"torn")
    dist.barrier()
    trainer.train()
    report = every_rank_report(trainer.train_dataset)
    params = {n: p.detach().double().sum().item() for n, p in backend.model.named_parameters() if p.requires_grad}
    with open(os.path.join(out, f"rank{dist.get_rank()}.json"), "w") as fh:
        json.dump({"seen": seen, "probes": probes, "initial": initial, "report": report, "params": params,
                   "log": trainer.state.log_history, "nonfinite": trainer.nonfinite_steps}, fh)
    from savi_plugin.training.distributed import close_process_group
    close_process_group()  # as PyTorch advises: left to exit, a rank can abort (SIGABRT)
""")


def test_a_rank_whose_whole_micro_batch_fails_to_decode_still_steps_with_the_others(
        tiny_llava_onevision, synthetic_samples, tmp_path):
    """Pair 1's video breaks after loading; with sequential order and one pair per rank, rank 1's first
    micro-batch is empty. It must still run the forward (DDP waits for it), add nothing to the loss, and its
    skip must reach the report that rank 0 writes. The videos are probed once (by rank 0), not once per rank."""
    import shutil

    torn = tmp_path / "torn.mp4"
    shutil.copy(synthetic_samples[1].video, torn)
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:4], rotate=False)
    records = [json.loads(line) for line in data.read_text().splitlines()]
    records[1]["video"] = str(torn)
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    script = tmp_path / "run.py"
    script.write_text(SKIP_RUN)
    env = {**os.environ, "PYTHONPATH": repo_pythonpath(), "OMP_NUM_THREADS": "1"}
    # on today's main the job deadlocks here (rank 1 skipped DDP's forward): the timeout is the failure
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={free_port()}", str(script), str(tiny_llava_onevision), str(data),
                           str(torn), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    ids = [r["id"] for r in records]
    assert ranks[0]["seen"] == [[ids[0]], [ids[2]]] and ranks[1]["seen"] == [[], [ids[3]]]
    losses = [h["loss"] for h in ranks[0]["log"] if "rewards/margins" in h]
    assert len(losses) == 2 and all(l is not None for l in losses)
    initial = ranks[0]["initial"]
    assert abs(initial[ids[0]] - initial[ids[1]]) > 1e-4
    assert abs(losses[0] - initial[ids[0]]) < 1e-5  # step 1: pair 0 alone, the empty rank adds 0
    assert ranks[0]["nonfinite"] == ranks[1]["nonfinite"] == 0
    for name, value in ranks[0]["params"].items():  # the zero-weighted stand-in kept DDP's gradients in step
        assert abs(value - ranks[1]["params"][name]) < 1e-9, name
    for rank in ranks:  # one report, with rank 1's skip, on every rank
        assert rank["report"]["skipped_by_reason"] == {"bad_video": 1}
        assert [e["line"] for e in rank["report"]["skipped_records"]] == [2]
    assert len(ranks[0]["probes"]) == 4 and ranks[1]["probes"] == []
