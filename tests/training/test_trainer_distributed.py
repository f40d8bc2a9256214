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
