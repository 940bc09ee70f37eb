"""``bnblint server``: a Language Server (stdio) publishing findings and offering fixes.

A thin front end over ``runner.lint_one_text``: it only translates positions and fixes into LSP
terms. Linting runs on one worker thread, off the event loop: a typical module takes tens of
milliseconds, a large one much more (the analysis; LibCST parsing, for quick fixes and fix-all
only), and the server must keep answering meanwhile. There is no debounce timer; instead,
changes that arrive while a document is being linted are coalesced into one more lint of its
newest text (a burst of keystrokes costs two lints, not one per keystroke), and a lint whose
text changed meanwhile publishes nothing.

Each analysis of a document is cached by (version, settings) and kind (diagnostics, quick-fix
edits, fix-all), so code actions on an unchanged document reuse it; a change or close drops it.
Publishing diagnostics never parses LibCST: only the code actions render fix edits. An
analysis that raises (RecursionError on deeply nested code, a bug in a rule) or text nested
too deeply to hand to LibCST's native parser (which can crash the process) costs that document
its findings, reported as one diagnostic at line 1, never the server. The custom request
``bnblint/state`` reports the per-document state and the number of analyses run, for tests.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import gc
import logging
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cattrs
from lsprotocol import types
from pygls.capabilities import get_capability
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import RPCRequest
from pygls.uris import to_fs_path

from bnblint import __version__
from bnblint.diagnostics import Applicability, Finding, Level, Location
from bnblint.guard import MAX_NESTING, nesting_depth
from bnblint.pipeline import FileResult
from bnblint.runner import lint_one_text
from bnblint.settings import ConfigError, Settings, find_config, load_settings

logger = logging.getLogger(__name__)

SOURCE = "bnblint"
FIX_ALL = "source.fixAll.bnblint"
STATE = "bnblint/state"  # custom request: per-document state, for tests
_LSP_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# LibCST's native parser overflows the C stack (SIGSEGV) at about 1,300 nested brackets; Python
# itself rejects more than 200, so 100 leaves a wide margin and costs no real code.


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


def _release_memory() -> None:
    """Give freed memory back to the OS after a document is dropped: glibc keeps the lint
    thread's freed arena pages otherwise, and one large document held hundreds of MB."""
    fixes = sys.modules.get("bnblint.fix.apply")  # loaded once a fix was rendered
    if fixes is not None:
        fixes.forget()  # the LibCST modules kept for fixes
    gc.collect()  # LibCST trees and metadata hold reference cycles
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
            pass


class Kind(enum.Enum):
    """What an analysis computes; each costs differently, so each is run only when asked."""

    DIAGNOSTICS = "diagnostics"
    EDITS = "edits"  # diagnostics with each fix's text edits, for quick fixes
    FIX_ALL = "fix-all"  # the text with all safe fixes applied


@dataclass(frozen=True)
class Snapshot:
    """What one lint needs, taken on the event loop (the workspace is not thread-safe)."""

    uri: str
    path: str
    text: str
    version: int | None
    settings: Settings


@dataclass(frozen=True)
class Analysis:
    snap: Snapshot
    result: FileResult | None  # None when the analysis failed
    failure: str | None = None  # why bnblint could not analyse the text, for the user
    detail: str | None = None  # ... and at length, for the log


@dataclass
class CacheEntry:
    """The analyses of one document version under one configuration."""

    version: int | None
    text: str
    settings: Settings
    runs: dict[Kind, asyncio.Future[Analysis]] = field(default_factory=dict)

    def matches(self, snap: Snapshot) -> bool:
        # The text too: a client that does not bump versions must still get fresh results.
        return (
            self.version == snap.version
            and self.settings == snap.settings
            and self.text == snap.text
        )

    def failed(self) -> asyncio.Future[Analysis] | None:
        """A run that could not analyse this text: the other kinds would fail alike."""
        for run in self.runs.values():
            if run.done() and not run.cancelled() and run.exception() is None:
                if run.result().failure is not None:
                    return run
        return None


_ANSWERED = object()  # a request answered while it was being read: nothing more to do


class BnblintProtocol(LanguageServerProtocol):
    """Answers every request. pygls only logs a request whose params do not deserialize (wrong
    types, a missing field), and drops requests after ``shutdown``: the client would wait
    forever for either."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            msg_id = data.get("id")
            if "method" not in data or not isinstance(msg_id, (int, str)):
                raise  # a notification: nobody waits for an answer
            cause = exc.__cause__
            detail = (
                "; ".join(cattrs.transform_error(cause))
                if isinstance(cause, cattrs.ClassValidationError)
                else str(cause or exc)
            )
            message = f"{exc.message} for {data['method']}: {detail}"
            logger.warning("bnblint: %s", message)
            self._send_response(msg_id, error=types.ResponseError(code=exc.code, message=message))
            return _ANSWERED

    def handle_message(self, message: Any) -> None:
        if message is _ANSWERED:
            return
        if self._shutdown and isinstance(message, RPCRequest):
            error = JsonRpcInvalidRequest(message="the server is shutting down")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)


class BnblintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "bnblint",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Full,
            protocol_cls=BnblintProtocol,
        )
        self.config_errors: dict[Path, str] = {}  # shown once per config and message
        # One thread: lints run one at a time, so no rule needs to be thread-safe.
        self.linter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bnblint-lint")
        self.linting: set[str] = set()  # URIs with a lint in flight
        self.stale: set[str] = set()  # ... whose text changed (or closed) since it started
        self.cache: dict[str, CacheEntry] = {}  # by URI: open documents only
        self.analyses = 0  # analyses run since start, for ``bnblint/state``

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

    async def analyse(self, uri: str, kind: Kind) -> Analysis | None:
        """The cached analysis of the document's current text, run if there is none."""
        snap = self.snapshot(uri)
        if snap is None:
            return None
        entry = self.cache.get(uri)
        if entry is None or not entry.matches(snap):
            entry = self.cache[uri] = CacheEntry(snap.version, snap.text, snap.settings)
        run = entry.runs.get(kind) or entry.failed()
        if run is None or run.cancelled():
            self.analyses += 1
            logger.debug("bnblint: analysing %s (version %s, %s)", uri, snap.version, kind.value)
            loop = asyncio.get_running_loop()
            run = entry.runs[kind] = loop.run_in_executor(
                self.linter, self.run_analysis, snap, kind
            )
            run.add_done_callback(self.report_failure)  # once per run, on the event loop
        # Shielded: a cancelled code action request must not cancel a run others share.
        return await asyncio.shield(run)

    def run_analysis(self, snap: Snapshot, kind: Kind) -> Analysis:
        """On the lint thread: any failure costs this document its findings, not the server."""
        depth = nesting_depth(snap.text)
        if depth > MAX_NESTING:
            failure = f"too deeply nested to analyse (over {MAX_NESTING} levels of brackets)"
            return Analysis(snap, None, failure, failure)
        try:
            # The project around the file: its imports resolve, and its importers' loads count.
            result = lint_one_text(
                snap.text,
                snap.path,
                snap.settings,
                fix=kind is Kind.FIX_ALL,
                want_edits=kind is Kind.EDITS,
            )
        except Exception as exc:  # RecursionError on deep code, a bug in a rule, ...
            logger.exception("bnblint failed on %s", snap.path)
            name = type(exc).__name__
            return Analysis(snap, None, f"{name} (see the server log)", f"{name}: {exc}")
        if result.error is not None and not result.error.startswith("cannot parse"):
            # The pipeline caught a failure itself; unparsable text is the usual mid-edit state.
            return Analysis(snap, None, result.error, result.error)
        return Analysis(snap, result)

    def report_failure(self, run: asyncio.Future[Analysis]) -> None:
        if run.cancelled() or run.exception() is not None:
            return
        analysis = run.result()
        if analysis.failure is None:
            return
        snap = analysis.snap
        message = f"bnblint could not analyse {snap.path} (version {snap.version}): "
        self.window_log_message(
            types.LogMessageParams(
                type=types.MessageType.Error, message=message + str(analysis.detail)
            )
        )

    def failure_diagnostic(self, failure: str, positions: PositionMap) -> types.Diagnostic:
        end = types.Position(line=0, character=code_units(positions.lines[0], positions.encoding))
        return types.Diagnostic(
            range=types.Range(start=types.Position(line=0, character=0), end=end),
            severity=types.DiagnosticSeverity.Information,
            source=SOURCE,
            message=f"bnblint could not analyse this file: {failure}",
        )

    async def publish(self, uri: str) -> None:
        if uri in self.linting:
            self.stale.add(uri)  # the running lint will go again on the newest text
            return
        self.linting.add(uri)
        try:
            while True:
                self.stale.discard(uri)
                analysis = await self.analyse(uri, Kind.DIAGNOSTICS)
                if uri not in self.stale:
                    break
        finally:
            self.linting.discard(uri)
        if analysis is None:
            return
        snap, result = analysis.snap, analysis.result
        positions = PositionMap(snap.text, self.encoding)
        if result is None:
            assert analysis.failure is not None
            diagnostics = [self.failure_diagnostic(analysis.failure, positions)]
        else:
            if result.error is not None:
                # Mid-edit syntax errors are the Python language server's to show; stale
                # findings at shifted positions would only mislead: clear them until it parses.
                logger.info("%s: %s", uri, result.error)
            diagnostics = [self.diagnostic(f, positions) for f in result.findings]
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, version=snap.version, diagnostics=diagnostics)
        )

    def changed(self, uri: str) -> None:
        self.cache.pop(uri, None)  # the old text's results can never be asked for again

    def closed(self, uri: str) -> None:
        if uri in self.linting:
            self.stale.add(uri)  # its next snapshot is None: nothing more is published
        else:
            self.stale.discard(uri)
        if self.cache.pop(uri, None) is not None:
            _release_memory()
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    def state(self) -> dict[str, Any]:
        """What the server holds per document; honest counters, for tests and debugging."""
        return {
            "open": sorted(self.workspace.text_documents),
            "cached": sorted(self.cache),
            "linting": sorted(self.linting),
            "stale": sorted(self.stale),
            "analyses": self.analyses,
        }

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
        analysis = await self.analyse(uri, Kind.EDITS)
        if analysis is None or analysis.result is None:
            return []
        snap, result = analysis.snap, analysis.result
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
        analysis = await self.analyse(uri, Kind.FIX_ALL)
        if analysis is None or analysis.result is None:
            return None
        snap, result = analysis.snap, analysis.result
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
        ls.changed(params.text_document.uri)
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

    @server.feature(STATE)
    def state(ls: BnblintServer, params: Any) -> dict[str, Any]:
        return ls.state()

    return server


def serve() -> None:
    # stdout carries the protocol: logs go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
    create_server().start_io()
