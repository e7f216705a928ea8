"""Demo plant data set: deterministic JSON files and constant.js for ``factorysync demo``."""

from factorysync.demo.generator import DemoSource, generate_demo

__all__ = ["DemoSource", "generate_demo"]
