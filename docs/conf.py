"""Sphinx configuration of the docs site (`make docs`): MyST Markdown, and the references
that docs/_ext/ccat_reference.py writes from the code at every build."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "ccat_api"
author = "CCAT"
copyright = "CCAT"

extensions = ["myst_parser", "ccat_reference"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

# GitHub's anchors for headings down to ####, so links written for GitHub
# (`wan-outage.md#buffer-capacity`, the alerts' runbook_url) resolve here too, and a link to
# a heading that does not exist is a warning (an error under `make docs`).
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

html_theme = "furo"
html_title = "ccat_api"
html_static_path: list[str] = []
