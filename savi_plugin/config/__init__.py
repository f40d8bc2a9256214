"""Configuration: the rules and the checker of configuration values (:mod:`~savi_plugin.config.values`) and the
typed recipe (:mod:`~savi_plugin.config.sections`)."""

from savi_plugin.config.values import ConfigError, build, check_mapping, validate

__all__ = ["ConfigError", "build", "check_mapping", "validate"]
