"""The flake8 front end: ``flake8 --select BNB`` reports what ``bnblint check`` reports.

Registered as the ``BNB`` entry point of ``flake8.extension``. Everything (prefilter, analysis,
selection from ``[tool.bnblint]``, ``# noqa``) is the pipeline's; this module only maps
findings to flake8's tuples. flake8 then applies its own ``--select``/``--ignore`` and
``# noqa`` on top, which agree with bnblint's (same row, same codes), so nothing is reported
twice and a comment honoured by one is honoured by both.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from bnblint import __version__
from bnblint.runner import lint_one_text
from bnblint.settings import Settings, settings_for_path

# flake8 checks many files of a few directories in each worker process: look the nearest
# pyproject.toml up once per directory, and read each one once.
_BY_DIRECTORY: dict[str, Settings] = {}


def settings_for(filename: str) -> Settings:
    """The settings ``bnblint check FILE`` would use (stdin: the current directory's), read
    once per directory: flake8 calls the plugin once per file. A bad ``[tool.bnblint]`` raises
    ConfigError: flake8 stops and names the plugin, as ``bnblint check`` stops with exit 2,
    rather than lint with other rules."""
    directory = os.path.dirname(os.path.abspath(filename))
    settings = _BY_DIRECTORY.get(directory)
    if settings is None:
        settings = _BY_DIRECTORY[directory] = settings_for_path(Path(directory))
    return settings


class Plugin:
    """A flake8 AST plugin; flake8 requires the ``tree`` argument, bnblint parses ``lines``."""

    name = "bnblint"
    version = __version__

    def __init__(self, tree: ast.AST, lines: Sequence[str], filename: str) -> None:
        # `lines` rather than re-reading `filename`: it is what flake8 read (stdin included),
        # already decoded with the file's PEP 263 encoding.
        self.lines = lines
        self.filename = filename

    def run(self) -> Iterator[tuple[int, int, str, type[Plugin]]]:
        text = "".join(self.lines)
        # The byte prefilter runs before LibCST is imported; the project around the file
        # resolves its imports, as `bnblint check` does.
        result = lint_one_text(text, self.filename, settings_for(self.filename))
        for finding in result.findings:
            # Finding columns are 1-based; flake8 adds 1 to what plugins yield.
            yield (
                finding.location.row,
                finding.location.column - 1,
                f"{finding.code} {finding.message}",
                type(self),
            )
