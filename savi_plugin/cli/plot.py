"""``savi plot RUN_DIR``: training curves (loss, margins, KL, margin-sign accuracy) of a ``savi train`` run."""

from __future__ import annotations

from pathlib import Path

from savi_plugin.cli import say


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plot", help="plot a training run's curves (loss, margins, KL, accuracy) to a PNG")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a `savi train` output folder")
    parser.add_argument("--out", default=None, help="PNG to write (default: RUN_DIR/training_curves.png)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from savi_plugin.data.outputs import atomic_path, claim, file_output
    from savi_plugin.errors import ConfigurationError, RunError
    from savi_plugin.inspection.curves import NoLogHistory, plot_training

    if not Path(args.run_dir).is_dir():
        from savi_plugin.data.files import file_problem

        problem = file_problem(args.run_dir, "folder")
        what = ("not found" if problem == "file not found" else "is not a folder" if problem is None else
                problem.removesuffix(", not a folder"))
        raise RunError(f"{args.run_dir}: RUN_DIR {what}; give a `savi train` output folder")
    out = file_output(args.out, "--out") if args.out else Path(args.run_dir) / "training_curves.png"
    if out.suffix.lower() != ".png":
        raise ConfigurationError(f"{out}: --out must be a .png file")
    run = Path(args.run_dir)
    logs = ("train_report.json", "trainer_state.json")
    if not any((run / name).is_file() for name in logs) and not any(run.glob("checkpoint-*")):
        below = sorted(str(p) for p in run.iterdir() if p.is_dir() and any((p / name).is_file() for name in logs))
        if below:  # a step folder of savi demo / ablate / align, whose training run is one level down
            raise RunError(f"{run}: RUN_DIR holds no training run, but {', '.join(below)} "
                           f"{'does' if len(below) == 1 else 'do'}: give that folder (savi plot {below[0]})")
    # what it reads: the run's report and trainer state, and every checkpoint-N folder (its trainer_state.json and
    # savi_checkpoint.json); an --out equal to one or inside a checkpoint is an output inside an input. The run
    # folder itself is not one: the default output lies in it, beside what it reads
    inputs = {f"RUN_DIR's {name}": run / name for name in logs}
    checkpoints = {"a checkpoint folder of RUN_DIR that savi plot reads": sorted(run.glob("checkpoint-*"))}
    # new, or an earlier plot of ours (marked); never a user's file or a file the run needs
    with claim(out, command="savi plot", inputs=inputs, input_files=checkpoints,
               output_name="--out" if args.out else "the curves (RUN_DIR/training_curves.png without --out)",
               replace_ours=True, inside=run) as claimed:  # its curves may lie inside RUN_DIR, no other run
        try:
            with atomic_path(out, suffix=".png") as tmp:
                _, panels = plot_training(args.run_dir, tmp)
        except NoLogHistory as exc:
            raise RunError(str(exc)) from None
        claimed.write_mark()
    say(f"{out}: {', '.join(panels)}")
    return 0
