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
        for name, ep in sorted(found.items()):
            dist = ep.dist.name if ep.dist is not None else "?"
            say(f"  {name:<18} {ep.value}  [{dist}]")
    return 0
