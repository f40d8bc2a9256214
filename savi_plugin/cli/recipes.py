"""``savi recipes ls|show|cp``: list, print and copy the shipped recipes (torchtune's ``tune ls/cp``)."""

from __future__ import annotations

from pathlib import Path

from savi_plugin.cli import say


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("recipes", help="list, show or copy the shipped YAML recipes")
    sub = parser.add_subparsers(dest="recipes_command", metavar="ACTION", required=True)
    sub.add_parser("ls", help="list shipped recipes").set_defaults(func=run_ls)
    show = sub.add_parser("show", help="print a recipe's resolved values (after inheritance, overrides, defaults)")
    show.add_argument("recipe", metavar="RECIPE")
    show.add_argument("overrides", nargs="*", metavar="key.path=value")
    show.set_defaults(func=run_show)
    cp = sub.add_parser("cp", help="copy a shipped recipe to edit it")
    cp.add_argument("recipe", metavar="RECIPE")
    cp.add_argument("dest", metavar="DEST")
    cp.set_defaults(func=run_cp)


def run_ls(args) -> int:
    from savi_plugin.recipe import list_recipes, shipped_recipes_dir
    from savi_plugin.untrusted import load_yaml

    for name in list_recipes():
        path = shipped_recipes_dir() / f"{name}.yaml"
        text = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
        desc = " ".join(str(text.get("description", "")).split())
        say(f"{name:<34} {desc[:90]}")
    return 0


def run_show(args) -> int:
    import yaml

    from savi_plugin.pipeline.dry_run import resolved
    from savi_plugin.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    say(f"# {recipe.source}")
    say("# resolved: every default filled in; train keys not listed take TrainingArguments' defaults")
    print(yaml.safe_dump(resolved(recipe), sort_keys=False), end="")
    return 0


def run_cp(args) -> int:
    from savi_plugin.data.outputs import claim, copy_file, names_a_folder
    from savi_plugin.errors import ConfigurationError
    from savi_plugin.recipe import resolve_recipe_path

    src = resolve_recipe_path(args.recipe)
    dest = Path(args.dest)
    if dest.is_dir():  # into the folder, as `cp`
        dest = dest / src.name
    elif names_a_folder(args.dest):  # `newdir/` names a folder, and none is there: `cp` refuses it too
        raise ConfigurationError(f"{args.dest}: not a folder (DEST ending in '/' names the folder to copy into; "
                                 f"create it first, or name the file)")
    _refuse_shipped_place(args.dest, dest, src)
    # the output layer: a new file, or this command's own earlier copy (its mark beside it); never a user's file
    with claim(dest, command="savi recipes cp", inputs={"the recipe": src}, output_name="DEST") as claimed:
        claimed.write_mark()
        copy_file(src, dest)
    say(f"copied {src.name} to {dest}")
    return 0


def _refuse_shipped_place(given: str, dest: Path, src: Path) -> None:
    """Refuse a copy that would pass for a shipped recipe: one written into the shipped recipes' folder (listed by
    ``savi recipes ls`` as shipped), and one in the working folder named as a shipped recipe (``NAME``,
    ``NAME.yaml``, ``NAME.yml``: ``savi recipes cp tiny_demo tiny_demo``), after which the bare name typed here names
    both and every command refuses it as ambiguous. The copy onto the recipe itself is the output layer's refusal."""
    from savi_plugin.errors import ConfigurationError
    from savi_plugin.recipe import list_recipes, shipped_recipes_dir

    import os

    real = Path(os.path.realpath(dest))  # a loop of links on DEST's path is the output layer's refusal, named there
    if real == src.resolve():
        return
    folder = real.parent
    if folder == shipped_recipes_dir().resolve():
        raise ConfigurationError(f"{given}: DEST is in the shipped recipes' folder ({folder}), where a copy would be "
                                 f"listed as a shipped recipe: copy it into your own folder to edit it")
    stem = dest.name.removesuffix(".yaml") if dest.name.endswith(".yaml") else dest.name.removesuffix(".yml")
    if folder == Path.cwd().resolve() and stem in list_recipes():
        raise ConfigurationError(f"{given}: DEST takes the name of the shipped recipe {stem} in the working folder, "
                                 f"where the bare name {stem} would then name both (refused as ambiguous): name the "
                                 f"copy otherwise, e.g. my_{stem}.yaml")
