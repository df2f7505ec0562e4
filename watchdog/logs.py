"""Logging configuration (placeholder until the foundation issue lands the full version)."""

from __future__ import annotations

import sys

from loguru import logger

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """Configure loguru once: stderr only, diagnose off."""
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=json, diagnose=False, backtrace=False)
