"""Configuration: the one place that validates values (:mod:`~savi_plugin.config.values`)."""

from savi_plugin.config.values import ConfigError, build, check_mapping, validate

__all__ = ["ConfigError", "build", "check_mapping", "validate"]
