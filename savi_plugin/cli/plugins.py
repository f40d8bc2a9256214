"""``savi plugins``: list every registered entry point, third-party ones included."""

from __future__ import annotations

from savi_plugin import registry
from savi_plugin.cli import say


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plugins", help="list registered backends, generators, losses, trainers, eval models")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Every entry of every group; one that cannot be used (:func:`savi_plugin.registry.problem`: a conflict, a
    name that cannot be used, a module missing or raising when imported, an object of the wrong kind) is marked
    with its reason, and the exit status is then 1."""
    from savi_plugin.untrusted import shown_name

    broken = 0
    for group in registry.GROUPS:
        found = registry.entries(group)
        say(f"{group}:")
        if not found:
            say("  (none)")
        clashes = registry.conflicts(group)
        for name, ep in sorted(found.items()):
            why = None if name in clashes else registry.problem(group, name)
            broken += bool(why) or name in clashes
            for one in clashes.get(name, [ep]):
                dist = one.dist.name if one.dist is not None else "?"
                note = ("  (conflict: one name, several objects; it cannot be used)" if name in clashes else
                        f"  (broken: {why})" if why else "")
                say(f"  {shown_name(name):<18} {one.value}  [{dist}]{note}")
    return 1 if broken else 0
