"""``bnblint server``: a Language Server (stdio) publishing findings and offering fixes.

A thin front end over ``pipeline.lint_text``: it only translates positions and fixes into LSP
terms. Linting runs on one worker thread, off the event loop: a typical module takes tens of
milliseconds, but a 3,000-line one over a second (LibCST parsing), and the server must keep
answering meanwhile. There is no debounce timer; instead, changes that arrive while a document is
being linted are coalesced into one more lint of its newest text (a burst of keystrokes costs
two lints, not one per keystroke), and a lint whose text changed meanwhile publishes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types
from pygls.capabilities import get_capability
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from bnblint import __version__
from bnblint.diagnostics import Applicability, Finding, Level, Location
from bnblint.pipeline import FileResult, lint_text
from bnblint.settings import ConfigError, Settings, find_config, load_settings

logger = logging.getLogger(__name__)

SOURCE = "bnblint"
FIX_ALL = "source.fixAll.bnblint"
_LSP_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def code_units(text: str, encoding: str) -> int:
    """Length of ``text`` in the negotiated position encoding's code units (LSP default UTF-16)."""
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    # UTF-16: characters outside the BMP (emoji, ...) take a surrogate pair.
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


class PositionMap:
    """Pipeline locations (1-based rows, 1-based character columns) to 0-based LSP positions.

    Lines end at "\r\n", "\r" or "\n" for LSP and for LibCST alike; a column past a line's
    end (at its "\r\n") is clamped to it.
    """

    def __init__(self, text: str, encoding: str = types.PositionEncodingKind.Utf16) -> None:
        self.lines = _LSP_LINE_BREAK.split(text)
        self.encoding = encoding

    def position(self, location: Location) -> types.Position:
        row = min(max(location.row - 1, 0), len(self.lines) - 1)
        prefix = self.lines[row][: max(location.column - 1, 0)]
        return types.Position(line=row, character=code_units(prefix, self.encoding))

    def range(self, start: Location, end: Location) -> types.Range:
        return types.Range(start=self.position(start), end=self.position(end))

    def end(self) -> types.Position:
        """The end of the text, where a whole-document edit must end."""
        last = len(self.lines) - 1
        return types.Position(line=last, character=code_units(self.lines[last], self.encoding))


def _key(position: types.Position) -> tuple[int, int]:
    return (position.line, position.character)


def intersects(a: types.Range, b: types.Range) -> bool:
    """Inclusive, so that a cursor (an empty range) at either end of a finding counts."""
    return _key(a.start) <= _key(b.end) and _key(b.start) <= _key(a.end)


def _kind_requested(kind: str, only: list[str] | None) -> bool:
    # LSP kinds are hierarchical: asking for "source" includes "source.fixAll.bnblint".
    return only is None or any(kind == o or kind.startswith(o + ".") for o in only)


@dataclass(frozen=True)
class Snapshot:
    """What one lint needs, taken on the event loop (the workspace is not thread-safe)."""

    uri: str
    path: str
    text: str
    version: int | None
    settings: Settings


class BnblintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "bnblint", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full
        )
        self.config_errors: dict[Path, str] = {}  # shown once per config and message
        # One thread: lints run one at a time, so no rule needs to be thread-safe.
        self.linter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bnblint-lint")
        self.linting: set[str] = set()  # URIs with a lint in flight
        self.stale: set[str] = set()  # ... whose text changed (or closed) since it started

    @property
    def encoding(self) -> str:
        return self.server_capabilities.position_encoding or types.PositionEncodingKind.Utf16

    def snapshot(self, uri: str) -> Snapshot | None:
        """An open Python document on disk; None for anything not linted."""
        # Unknown URIs come back as unopened documents with no language id.
        doc = self.workspace.get_text_document(uri)
        if doc.language_id != "python" or not uri.startswith("file://"):
            return None
        path = to_fs_path(uri)
        if path is None or not path.endswith(".py"):
            return None
        return Snapshot(uri, path, doc.source, doc.version, self.settings_for(path))

    def settings_for(self, path: str) -> Settings:
        """The nearest ``[tool.bnblint]`` table; a bad one is reported once, then defaults."""
        try:
            config = find_config(Path(path).absolute())
        except OSError as exc:
            logger.warning("bnblint: cannot look for a configuration: %s", exc)
            return Settings()
        if config is None:
            return Settings()
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            message = f"bnblint: {exc}; using the default settings"
            if self.config_errors.get(config) != message:
                self.config_errors[config] = message
                logger.warning("%s", message)
                self.window_show_message(
                    types.ShowMessageParams(type=types.MessageType.Warning, message=message)
                )
            return Settings()
        self.config_errors.pop(config, None)
        return settings

    async def lint(self, uri: str, **options: bool) -> tuple[Snapshot, FileResult] | None:
        snap = self.snapshot(uri)
        if snap is None:
            return None
        job = functools.partial(lint_text, snap.text, snap.path, snap.settings, **options)
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.linter, job)
        except Exception:  # a bug in a rule must cost one file's findings, not the server
            logger.exception("bnblint failed on %s", snap.path)
            return None
        return snap, result

    async def publish(self, uri: str) -> None:
        if uri in self.linting:
            self.stale.add(uri)  # the running lint will go again on the newest text
            return
        self.linting.add(uri)
        try:
            while True:
                self.stale.discard(uri)
                linted = await self.lint(uri)
                if uri not in self.stale:
                    break
        finally:
            self.linting.discard(uri)
        if linted is None:
            return
        snap, result = linted
        if result.error is not None:
            # Mid-edit syntax errors are the Python language server's to show; stale findings
            # at shifted positions would only mislead, so clear them until the text parses.
            logger.info("%s: %s", uri, result.error)
        positions = PositionMap(snap.text, self.encoding)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                version=snap.version,
                diagnostics=[self.diagnostic(f, positions) for f in result.findings],
            )
        )

    def closed(self, uri: str) -> None:
        if uri in self.linting:
            self.stale.add(uri)  # its next snapshot is None: nothing more is published
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    def workspace_edit(self, snap: Snapshot, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
        """Versioned where the client allows it, so that it refuses edits to a changed text."""
        caps = self.client_capabilities
        if get_capability(caps, "workspace.workspace_edit.document_changes", False):
            document = types.OptionalVersionedTextDocumentIdentifier(
                uri=snap.uri, version=snap.version
            )
            return types.WorkspaceEdit(
                document_changes=[types.TextDocumentEdit(text_document=document, edits=edits)]
            )
        return types.WorkspaceEdit(changes={snap.uri: edits})

    def diagnostic(self, finding: Finding, positions: PositionMap) -> types.Diagnostic:
        return types.Diagnostic(
            range=positions.range(finding.location, finding.end_location),
            severity=types.DiagnosticSeverity.Error
            if finding.level is Level.ERROR
            else types.DiagnosticSeverity.Warning,
            code=finding.code,
            code_description=types.CodeDescription(href=finding.url),
            source=SOURCE,
            message=finding.message,
        )

    async def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        only = list(params.context.only) if params.context.only is not None else None
        actions: list[types.CodeAction] = []
        if _kind_requested(types.CodeActionKind.QuickFix, only):
            actions.extend(await self.quick_fixes(uri, params.range))
        if _kind_requested(FIX_ALL, only):
            fix_all = await self.fix_all(uri)
            if fix_all is not None:
                actions.append(fix_all)
        return actions

    async def quick_fixes(self, uri: str, requested: types.Range) -> list[types.CodeAction]:
        linted = await self.lint(uri, want_edits=True)
        if linted is None:
            return []
        snap, result = linted
        positions = PositionMap(snap.text, self.encoding)
        actions = []
        for finding in result.findings:
            if not finding.fixable or not finding.edits or finding.fix_message is None:
                continue
            diagnostic = self.diagnostic(finding, positions)
            if not intersects(diagnostic.range, requested):
                continue
            safe = finding.applicability is Applicability.SAFE
            edits = [
                types.TextEdit(
                    range=positions.range(e.location, e.end_location), new_text=e.content
                )
                for e in finding.edits
            ]
            actions.append(
                types.CodeAction(
                    title=finding.fix_message if safe else f"{finding.fix_message} (unsafe)",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic],
                    is_preferred=safe,
                    edit=self.workspace_edit(snap, edits),
                )
            )
        return actions

    async def fix_all(self, uri: str) -> types.CodeAction | None:
        linted = await self.lint(uri, fix=True)
        if linted is None:
            return None
        snap, result = linted
        if result.fixed_text is None:
            return None
        # One whole-document edit: the pipeline applies the safe fixes together, in passes,
        # which per-fix edits on the original text could not reproduce.
        end = PositionMap(snap.text, self.encoding).end()
        whole = types.Range(start=types.Position(line=0, character=0), end=end)
        return types.CodeAction(
            title="bnblint: apply all safe fixes",
            kind=FIX_ALL,
            edit=self.workspace_edit(
                snap, [types.TextEdit(range=whole, new_text=result.fixed_text)]
            ),
        )


def create_server() -> BnblintServer:
    server = BnblintServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: BnblintServer, params: types.DidOpenTextDocumentParams) -> None:
        await ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: BnblintServer, params: types.DidChangeTextDocumentParams) -> None:
        await ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: BnblintServer, params: types.DidSaveTextDocumentParams) -> None:
        await ls.publish(params.text_document.uri)  # the config may have changed meanwhile

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: BnblintServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL]),
    )
    async def code_action(
        ls: BnblintServer, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        return await ls.code_actions(params)

    return server


def serve() -> None:
    # stdout carries the protocol: logs go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
    create_server().start_io()
