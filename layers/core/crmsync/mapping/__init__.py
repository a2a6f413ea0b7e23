"""Declarative field mapping: canonical entity views -> CRM properties, loaded from config/mappings/*.yaml."""

from crmsync.mapping.fields import Mapping, ObjectMapping, load_mapping

__all__ = ["Mapping", "ObjectMapping", "load_mapping"]
