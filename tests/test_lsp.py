"""``bnblint server`` driven over stdio by pygls's own language client.

Each end-to-end test starts the real server (``python -m bnblint server``) as a subprocess. Every
wait has a timeout, so a hung server fails the test instead of hanging CI. The client applies
edits with its own position arithmetic (below), independent of the server's.
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from lsprotocol import types
from pygls.lsp.client import BaseLanguageClient
from test_documented_example import BROKEN

from bnblint.diagnostics import Location
from bnblint.lsp import PositionMap, code_units, intersects
from bnblint.pipeline import lint_text
from bnblint.settings import Settings

T = TypeVar("T")
START_TIMEOUT = 30.0  # server start-up (imports) on a slow CI machine
TIMEOUT = 10.0  # any other single exchange
TEST_TIMEOUT = 60.0
UTF16 = types.PositionEncodingKind.Utf16
UTF8 = types.PositionEncodingKind.Utf8
EMOJI_LINE = 's = "😀"; quantization_config = BitsAndBytesConfig(load_in_4bit=True)'


async def within(awaitable: Awaitable[T], seconds: float = TIMEOUT) -> T:
    return await asyncio.wait_for(awaitable, seconds)


def run(coroutine: Any) -> None:
    # asyncio.run in a sync test: no pytest plugin needed.
    asyncio.run(asyncio.wait_for(coroutine, TEST_TIMEOUT))


class Client(BaseLanguageClient):
    def __init__(self) -> None:
        super().__init__("bnblint-test", "0")
        self.inbox: defaultdict[str, asyncio.Queue[types.PublishDiagnosticsParams]] = defaultdict(
            asyncio.Queue
        )
        self.published: list[str] = []  # URIs, in arrival order
        self.messages: list[types.ShowMessageParams] = []
        self.logs: list[types.LogMessageParams] = []
        self.exit_code: int | None = None

        @self.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.append(params.uri)
            self.inbox[params.uri].put_nowait(params)

        @self.feature(types.WINDOW_SHOW_MESSAGE)
        def on_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params)

        @self.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams) -> None:
            self.logs.append(params)

    async def server_exit(self, server: asyncio.subprocess.Process) -> None:
        self.exit_code = server.returncode

    async def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        return list((await within(self.inbox[uri].get())).diagnostics)

    async def state(self) -> dict[str, Any]:
        """The server's ``bnblint/state``: what it holds per document, and analyses run."""
        result = await within(self.protocol.send_request_async("bnblint/state", None))
        # pygls's client hands an untyped result over as a namedtuple.
        return dict(result._asdict())

    def close(self, uri: str) -> None:
        self.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    def open(self, uri: str, text: str, language_id: str = "python") -> None:
        item = types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
        self.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))

    def change(self, uri: str, text: str, version: int) -> None:
        self.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    async def actions(
        self, uri: str, range_: types.Range, only: Sequence[str] | None = None
    ) -> list[types.CodeAction]:
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=range_,
            context=types.CodeActionContext(diagnostics=[], only=only),
        )
        result = await within(self.text_document_code_action_async(params))
        assert result is not None
        assert all(isinstance(a, types.CodeAction) for a in result)
        return list(result)  # type: ignore[arg-type]


@asynccontextmanager
async def session(
    cwd: Path, encodings: Sequence[str] | None = None, versioned_edits: bool = False
) -> AsyncIterator[Client]:
    client = Client()
    await client.start_io(sys.executable, "-m", "bnblint", "server", cwd=str(cwd))
    try:
        capabilities = types.ClientCapabilities(
            general=types.GeneralClientCapabilities(position_encodings=encodings),
            workspace=types.WorkspaceClientCapabilities(
                workspace_edit=types.WorkspaceEditClientCapabilities(
                    document_changes=versioned_edits
                )
            ),
        )
        init = types.InitializeParams(
            process_id=None, root_uri=cwd.as_uri(), capabilities=capabilities
        )
        await within(client.initialize_async(init), START_TIMEOUT)
        client.initialized(types.InitializedParams())
        yield client
        await within(client.shutdown_async(None))
        client.exit(None)
        await within(client.stop())
        assert client.exit_code == 0
    finally:
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()  # a failed test must not leave a server behind
            await server.wait()


def to_offset(text: str, position: types.Position, encoding: str) -> int:
    """A client's view: lines end at \\r\\n, \\r or \\n; characters count encoding units."""
    lines = text.splitlines(keepends=True)
    offset = sum(len(line) for line in lines[: position.line])
    line = lines[position.line] if position.line < len(lines) else ""
    codec = "utf-16-le" if encoding == UTF16 else "utf-8"
    unit = 2 if encoding == UTF16 else 1
    data = line.rstrip("\r\n").encode(codec, "surrogatepass")
    return offset + len(data[: position.character * unit].decode(codec, "surrogatepass"))


def apply_edits(text: str, edits: Sequence[types.TextEdit], encoding: str = UTF16) -> str:
    spans = [
        (to_offset(text, e.range.start, encoding), to_offset(text, e.range.end, encoding), i)
        for i, e in enumerate(edits)
    ]
    # From the end, so earlier offsets stay valid; equal starts keep the array's order.
    for start, end, i in sorted(spans, reverse=True):
        text = text[:start] + edits[i].new_text + text[end:]
    return text


def only_edits(
    action: types.CodeAction, uri: str, version: int | None = None
) -> list[types.TextEdit]:
    """The edits of a one-document WorkspaceEdit (versioned when ``version`` is given)."""
    edit = action.edit
    assert edit is not None
    if version is None:
        assert edit.changes is not None and set(edit.changes) == {uri}
        return list(edit.changes[uri])
    assert edit.changes is None and edit.document_changes is not None
    (change,) = edit.document_changes
    assert isinstance(change, types.TextDocumentEdit)
    assert change.text_document.uri == uri and change.text_document.version == version
    return [e for e in change.edits if isinstance(e, types.TextEdit)]


def codes(diagnostics: Sequence[types.Diagnostic]) -> list[str]:
    return [str(d.code) for d in diagnostics]


# -- unit tests of the position helpers ------------------------------------------------------


def test_code_units_count_surrogate_pairs() -> None:
    assert code_units("a😀b", UTF16) == 4
    assert code_units("a😀b", UTF8) == 6
    assert code_units("a😀b", types.PositionEncodingKind.Utf32) == 3
    assert code_units("é", UTF16) == 1 and code_units("é", UTF8) == 2


def test_positions_after_an_emoji() -> None:
    text = f"import x\n{EMOJI_LINE}\n"
    column = EMOJI_LINE.index("BitsAndBytesConfig") + 1  # 1-based characters, as Finding has
    python = PositionMap(text, UTF16).position(Location(2, column))
    assert python == types.Position(line=1, character=column - 1 + 1)  # the emoji is 2 units
    assert PositionMap(text, UTF8).position(Location(2, column)).character == column - 1 + 3
    start = Location(2, 1)
    assert PositionMap(text, UTF16).position(start) == types.Position(line=1, character=0)


def test_position_map_line_ends() -> None:
    crlf = "a = 1\r\nbb\r\n"
    positions = PositionMap(crlf)
    assert positions.position(Location(1, 7)) == types.Position(line=0, character=5)  # at \r
    assert positions.end() == types.Position(line=2, character=0)
    lone_cr = PositionMap("x\ry😀")  # LibCST, like LSP, breaks lines at a lone \r too
    assert lone_cr.position(Location(2, 2)) == types.Position(line=1, character=1)
    assert lone_cr.end() == types.Position(line=1, character=3)
    assert PositionMap("").end() == types.Position(line=0, character=0)


def test_intersects_is_inclusive() -> None:
    def r(a: int, b: int, c: int, d: int) -> types.Range:
        return types.Range(
            start=types.Position(line=a, character=b), end=types.Position(line=c, character=d)
        )

    finding = r(2, 4, 2, 10)
    assert intersects(finding, r(2, 10, 2, 10))  # cursor just after the span
    assert intersects(finding, r(0, 0, 5, 0))
    assert not intersects(finding, r(2, 11, 3, 0))
    assert not intersects(finding, r(0, 0, 2, 3))


def test_cli_import_does_not_load_the_server() -> None:
    code = "import sys, bnblint.cli; print(sorted({'pygls', 'lsprotocol'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_server_without_pygls_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['pygls'] = None; sys.argv = ['bnblint', 'server']; "
        "from bnblint.cli import main; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2
    assert "pip install 'bnblint[lsp]'" in out.stderr


# -- end to end, over stdio -----------------------------------------------------------------


def test_documented_example_round_trip(tmp_path: Path) -> None:
    uri = (tmp_path / "example.py").as_uri()
    expected = {f.code: f for f in lint_text(BROKEN, "example.py", Settings()).findings}
    lines = BROKEN.split("\n")

    async def main() -> None:
        async with session(tmp_path) as client:
            client.open(uri, BROKEN)
            diagnostics = await client.diagnostics(uri)
            assert sorted(codes(diagnostics)) == ["BNB001", "BNB002"]
            bnb002 = next(d for d in diagnostics if d.code == "BNB002")
            config = lines[2]  # quantization_config = BitsAndBytesConfig(load_in_4bit=True)
            assert bnb002.range == types.Range(
                start=types.Position(line=2, character=config.index("BitsAndBytesConfig")),
                end=types.Position(line=2, character=len(config)),
            )
            assert bnb002.source == "bnblint"
            assert bnb002.severity == types.DiagnosticSeverity.Warning
            assert bnb002.message == expected["BNB002"].message
            assert bnb002.code_description is not None
            assert bnb002.code_description.href == expected["BNB002"].url

            actions = await client.actions(uri, bnb002.range)
            assert [a.kind for a in actions if a.kind != "source.fixAll.bnblint"] == ["quickfix"]
            fix = actions[0]
            assert fix.title == expected["BNB002"].fix_message
            assert fix.is_preferred is True
            assert [codes(fix.diagnostics or [])] == [["BNB002"]]
            text = apply_edits(BROKEN, only_edits(fix, uri))
            assert "bnb_4bit_compute_dtype=torch.float16" in text and "import torch" in text

            client.change(uri, text, version=2)
            assert codes(await client.diagnostics(uri)) == ["BNB001"]

            fix_all = await client.actions(uri, bnb002.range, only=["source.fixAll"])
            assert [a.kind for a in fix_all] == ["source.fixAll.bnblint"]
            fixed = apply_edits(text, only_edits(fix_all[0], uri))
            ast.parse(fixed)
            client.change(uri, fixed, version=3)
            assert await client.diagnostics(uri) == []
            assert await client.actions(uri, bnb002.range) == []

    run(main())


@pytest.mark.parametrize(("encoding", "newline"), [(UTF16, "\n"), (UTF8, "\r\n")])
def test_non_bmp_text_before_the_span(tmp_path: Path, encoding: str, newline: str) -> None:
    uri = (tmp_path / "emoji.py").as_uri()
    source = BROKEN.replace("quantization_config = Bits", EMOJI_LINE.split("Bits")[0] + "Bits")
    assert EMOJI_LINE in source
    source = source.replace("\n", newline)
    config = "BitsAndBytesConfig(load_in_4bit=True)"
    expected = f"import torch{newline}" + source.replace(
        config, config[:-1] + ", bnb_4bit_compute_dtype=torch.float16)"
    )

    async def main() -> None:
        async with session(tmp_path, encodings=[encoding]) as client:
            client.open(uri, source)
            bnb002 = next(d for d in await client.diagnostics(uri) if d.code == "BNB002")
            prefix = EMOJI_LINE[: EMOJI_LINE.index("BitsAndBytesConfig")]
            codec = "utf-16-le" if encoding == UTF16 else "utf-8"
            units = len(prefix.encode(codec)) // (2 if encoding == UTF16 else 1)
            assert units != len(prefix)  # the emoji makes characters and code units differ
            start = types.Position(line=2, character=units)
            end = types.Position(line=2, character=units + len(config))
            assert bnb002.range == types.Range(start=start, end=end)
            (fix,) = [a for a in await client.actions(uri, bnb002.range) if a.kind == "quickfix"]
            text = apply_edits(source, only_edits(fix, uri), encoding)
            assert text == expected
            client.change(uri, text, version=2)
            assert codes(await client.diagnostics(uri)) == ["BNB001"]

    run(main())


def test_unsafe_fix_and_range_filter(tmp_path: Path) -> None:
    uri = (tmp_path / "unsafe.py").as_uri()
    # A dtype known only at run time: the compute dtype fix is unsafe.
    source = BROKEN.replace('"meta-llama/Llama-3.1-8B-Instruct",', '"m", dtype=dtype,')
    by_code = {f.code: f for f in lint_text(source, "unsafe.py", Settings()).findings}
    assert by_code["BNB002"].applicability == "unsafe"

    async def main() -> None:
        async with session(tmp_path, versioned_edits=True) as client:
            client.open(uri, source)
            diagnostics = {str(d.code): d for d in await client.diagnostics(uri)}
            actions = await client.actions(uri, diagnostics["BNB002"].range, only=["quickfix"])
            (unsafe,) = actions
            assert unsafe.title == f"{by_code['BNB002'].fix_message} (unsafe)"
            assert not unsafe.is_preferred
            # Only findings intersecting the requested range: the import line has none.
            line0 = types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=0, character=4)
            )
            assert await client.actions(uri, line0, only=["quickfix"]) == []
            # A range over everything offers both; fix-all applies only the safe one.
            everything = types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=99, character=0)
            )
            actions = await client.actions(uri, everything)
            quick = {codes(a.diagnostics or [])[0]: a for a in actions if a.kind == "quickfix"}
            assert set(quick) == {"BNB001", "BNB002"} and quick["BNB001"].is_preferred
            (fix_all,) = [a for a in actions if a.kind == "source.fixAll.bnblint"]
            assert only_edits(unsafe, uri, version=1)
            client.change(uri, apply_edits(source, only_edits(fix_all, uri, version=1)), version=2)
            assert codes(await client.diagnostics(uri)) == ["BNB002"]

    run(main())


def test_config_parse_errors_and_ignored_documents(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "pyproject.toml").write_text('[tool.bnblint]\nignore = ["BNB001"]\n')
    (bad / "pyproject.toml").write_text('[tool.bnblint]\nselect = ["NOPE"]\n')
    good_uri, bad_uri = (good / "a.py").as_uri(), (bad / "b.py").as_uri()
    ignored = [
        ((tmp_path / "notes.txt").as_uri(), "python"),
        ((tmp_path / "c.py").as_uri(), "plaintext"),
        ("untitled:Untitled-1", "python"),
    ]

    async def main() -> None:
        async with session(tmp_path) as client:
            for uri, language in ignored:
                client.open(uri, BROKEN, language)
            client.open(good_uri, BROKEN)
            assert codes(await client.diagnostics(good_uri)) == ["BNB002"]  # config honoured
            # Notifications are handled in order: nothing came for the ignored documents.
            assert client.published == [good_uri]

            # A bad config: defaults, and one message however often the file is linted.
            client.open(bad_uri, BROKEN)
            assert sorted(codes(await client.diagnostics(bad_uri))) == ["BNB001", "BNB002"]
            client.change(bad_uri, BROKEN + "\n", version=2)
            await client.diagnostics(bad_uri)
            client.text_document_did_save(
                types.DidSaveTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=bad_uri)
                )
            )
            await client.diagnostics(bad_uri)
            assert len(client.messages) == 1
            assert client.messages[0].type == types.MessageType.Warning
            assert "NOPE" in client.messages[0].message

            # Unparsable text clears the findings; the server stays up.
            client.change(good_uri, BROKEN + "def broken(:\n", version=2)
            assert await client.diagnostics(good_uri) == []
            client.change(good_uri, BROKEN, version=3)
            assert codes(await client.diagnostics(good_uri)) == ["BNB002"]

            client.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=good_uri)
                )
            )
            assert await client.diagnostics(good_uri) == []

    run(main())


def test_a_burst_of_changes_ends_with_the_newest_text(tmp_path: Path) -> None:
    uri = (tmp_path / "burst.py").as_uri()
    filler = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(200))  # slower lints
    fixed = lint_text(BROKEN, "burst.py", Settings(), fix=True).fixed_text
    assert fixed is not None
    texts = [BROKEN + filler + f"x = {i}\n" for i in range(4)] + [fixed + filler]

    async def main() -> None:
        async with session(tmp_path) as client:
            client.open(uri, BROKEN)
            await client.diagnostics(uri)
            for version, text in enumerate(texts, start=2):
                client.change(uri, text, version)
            last = len(texts) + 1
            versions: list[int | None] = []
            while not versions or versions[-1] != last:
                params = await within(client.inbox[uri].get())
                versions.append(params.version)
                diagnostics = list(params.diagnostics)
            assert diagnostics == []  # the newest text is linted last, and published
            assert versions == sorted(set(versions)), versions  # never an older text after

    run(main())
