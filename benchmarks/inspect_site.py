"""``savi inspect`` at scale: build the site for N synthetic pairs (default 100,000) over a few real videos, and
report build time, the index's size, the whole site's size, and how long headless Chromium takes to load the
index and draw its first page (when Chromium is installed).

    python benchmarks/inspect_site.py --pairs 100000 --videos 10 --out /tmp/inspect-bench
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np


def folder_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--out", default="/tmp/inspect-bench")
    args = parser.parse_args()

    from savi_plugin.inspection.site import build_site
    from savi_plugin.video.synthetic import render_sample, write_mp4

    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    for v in range(args.videos):
        write_mp4(root / "data" / f"v{v}.mp4", render_sample(np.random.default_rng(v), "moving_direction", size=64,
                                                             num_frames=16)[0])
    rng = np.random.default_rng(0)
    with open(root / "data" / "pairs.jsonl", "w") as fh:
        for i in range(args.pairs):
            word = ["up", "down", "left", "right"][i % 4]
            fh.write(json.dumps({
                "id": f"pair-{i}", "video": f"v{i % args.videos}.mp4",
                "question": f"In which direction does the shape move? (item {i})",
                "chosen": f"It moves {word}.", "rejected": "It moves nowhere.",
                "chosen_tagged": f"It moves <MASK>{word}</MASK>.", "rejected_tagged": "It moves <MASK>nowhere</MASK>.",
                "source": "rrpo" if i % 3 else "videosavi", "weight": round(float(rng.uniform(0.5, 1.5)), 3),
                "meta": {"num_frames": 8}}) + "\n")
    started = time.perf_counter()
    summary = build_site(root / "data" / "pairs.jsonl", root / "site", progress=False)
    build = time.perf_counter() - started
    files, total = folder_size(root / "site")
    report = {"pairs": summary.pairs, "videos": args.videos, "build_s": round(build, 1),
              "pairs_per_s": round(summary.pairs / build), "index_html_bytes": (root / "site/index.html").stat().st_size,
              "index_data_js_bytes": (root / "site/index-data.js").stat().st_size,
              "pair_page_bytes": (root / "site/pairs/0/1.html").stat().st_size,
              "site_files": files, "site_bytes": total, "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    chromium = shutil.which("chromium")
    if chromium:
        started = time.perf_counter()
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              f"--user-data-dir={root}/.chromium", "--dump-dom",
                              (root / "site/index.html").as_uri()], capture_output=True, text=True, timeout=300)
        report["chromium_index_s"] = round(time.perf_counter() - started, 2)
        report["chromium_rows_drawn"] = len(re.findall(r'<tr class="pair">', dom.stdout))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
