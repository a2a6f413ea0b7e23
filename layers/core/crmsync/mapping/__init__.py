"""Declarative field mapping: canonical entity views -> CRM properties, loaded from config/mappings/*.yaml."""

from crmsync.mapping.fields import Mapping, MappingError, ObjectMapping, load_mapping, parse_mapping_text

__all__ = ["Mapping", "MappingError", "ObjectMapping", "load_mapping", "parse_mapping_text"]
