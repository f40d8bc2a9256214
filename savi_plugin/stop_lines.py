"""The words of the line a stopped command ends with, defined once for the two places that write it: the CLI's
boundary (:func:`savi_plugin.cli._stopped`) and the console script around the CLI's import
(:mod:`savi_plugin.console`, which may not import the CLI module it guards). No imports: importing it costs
nothing before the Ctrl-C boundary stands."""

#: what the line calls each stop signal (by name: ``signal`` is imported where a command runs)
STOP_WORDS = {"SIGINT": "interrupted", "SIGTERM": "terminated (SIGTERM)", "SIGHUP": "hung up (SIGHUP)",
              "SIGQUIT": "quit (SIGQUIT)"}

#: a stopped command that claimed no output, or whose new outputs were removed before their first result
NOTHING_WRITTEN = "nothing was written"

#: what to do after a stop that kept nothing
RERUN = "re-run the command"


def stopped_line(word: str, kept: str) -> str:
    """The line (without its newline) of a command stopped by ``word`` (:data:`STOP_WORDS`) that keeps ``kept``."""
    return f"{word}: {kept}"


#: the line of a Ctrl-C before the command started (the console script's; the boundary's words for it)
STOPPED_AT_START = stopped_line(STOP_WORDS["SIGINT"], f"{NOTHING_WRITTEN}; {RERUN}") + "\n"
