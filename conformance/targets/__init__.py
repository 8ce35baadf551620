"""Targets: the servers under test. Each kind knows how to start, where to connect, and how to stop."""

from .base import Target, TargetError, TargetParams
from .spec import load_targets_file, parse_target

__all__ = ["Target", "TargetError", "TargetParams", "load_targets_file", "parse_target"]
