"""Cost of ``train.diagnostics: true``: training seconds (train_report.json) of a tiny RRPO run with and without
per-pair diagnostics (8 optimizer steps on 4 pairs, diagnostics at steps 0, 4 and 8), alternated, three times.

    python benchmarks/diagnostics_cost.py /tmp/diag-bench
"""
import sys

import json, shutil, yaml
from pathlib import Path
from savi_plugin.cli import main
root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/diag-bench")
shutil.rmtree(root, ignore_errors=True)
from savi_plugin.models.tiny import build_tiny_model
from savi_plugin.video.synthetic import make_synthetic_dataset
m = build_tiny_model(root / "model", "llava_onevision", seed=0)
samples = make_synthetic_dataset(root / "vids", 4, seed=0, num_frames=4)
(root / "pairs.jsonl").write_text("".join(json.dumps({
    "id": f"p{i}", "video": s.video, "question": s.question, "chosen": f"The answer is {s.answer}.",
    "rejected": "It is none of them.", "chosen_tagged": f"The answer is <MASK>{s.answer}</MASK>.",
    "rejected_tagged": "It is <MASK>none of them</MASK>."}) + "\n" for i, s in enumerate(samples)))
res = {False: [], True: []}
for rep in range(3):
    for diag in (False, True):
        out = root/f"o{rep}{int(diag)}"; shutil.rmtree(out, ignore_errors=True)
        (root/"r.yaml").write_text(yaml.safe_dump({"model":{"path":str(m),"num_frames":4},"lora":{"r":4,"alpha":8,"dropout":0.0},
          "train":{"loss_type":"rrpo","learning_rate":1e-3,"max_steps":8,"per_device_train_batch_size":1,"use_cpu":True,"logging_steps":1,"disable_tqdm":True,"seed":0,"save_strategy":"no","diagnostics":diag,"diagnostics_steps":4}}))
        main(["train",str(root/"r.yaml"),"--data",str(root/"pairs.jsonl"),"--output-dir",str(out)])
        res[diag].append(json.loads((out/"train_report.json").read_text())["seconds"])
import statistics as st
print({k: [round(x,2) for x in v] for k,v in res.items()}, "median ratio", round(st.median(res[True])/st.median(res[False]),2))
