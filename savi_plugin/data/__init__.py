"""Preference data: the record schema, validation, readers, the resumable writer, conversion."""

from savi_plugin.data.record import DataError, PreferenceRecord, validate_record
from savi_plugin.data.readers import FORMATS, read_records
from savi_plugin.data.tags import TagError, TaggedText, count_phrases, parse_tags, strip_tags
from savi_plugin.data.writer import JsonlAppender, PreferenceWriter

__all__ = ["DataError", "PreferenceRecord", "validate_record", "FORMATS", "read_records",
           "JsonlAppender", "PreferenceWriter", "TagError", "TaggedText", "count_phrases", "parse_tags", "strip_tags"]
