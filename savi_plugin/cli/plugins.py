"""``savi plugins``: list every registered entry point, third-party ones included."""

from __future__ import annotations

from savi_plugin import registry
from savi_plugin.cli import say


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plugins", help="list registered backends, generators, losses, trainers, eval models")
    parser.set_defaults(func=run)


def run(args) -> int:
    for group in registry.GROUPS:
        found = registry.entries(group)
        say(f"{group}:")
        if not found:
            say("  (none)")
        clashes = registry.conflicts(group)
        for name, ep in sorted(found.items()):
            for one in clashes.get(name, [ep]):
                dist = one.dist.name if one.dist is not None else "?"
                note = "  (conflict: one name, several objects; it cannot be used)" if name in clashes else ""
                say(f"  {name:<18} {one.value}  [{dist}]{note}")
    return 1 if any(registry.conflicts(group) for group in registry.GROUPS) else 0
