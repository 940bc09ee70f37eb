"""``bnblint server`` under bad input: malformed requests, code that breaks the analysis, large
documents, and repeated code actions. Every test drives the real server process over stdio.

Malformed requests go through a raw JSON-RPC client (pygls's own client would refuse to build
them); everything else uses the pygls client of ``test_lsp``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from test_documented_example import BROKEN
from test_lsp import START_TIMEOUT, TIMEOUT, Client, apply_edits, codes, run, session, within

from bnblint.lsp import MAX_NESTING, nesting_depth
from bnblint.pipeline import lint_source
from bnblint.settings import Settings

INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
EVERYTHING = types.Range(
    start=types.Position(line=0, character=0), end=types.Position(line=999, character=0)
)
DEEP_PARENS = "x = " + "(" * 1300 + "1" + ")" * 1300 + "\n"  # segfaults LibCST's parser
LONG_SUM = "x = " + "+".join(["1"] * 20_000) + "\n"  # RecursionError in the analysis


def fixed(text: str) -> str:
    result = lint_source(text, "a.py", Settings(), fix=True)
    assert result.fixed_text is not None and result.fixed_text != text
    return result.fixed_text


class RawServer:
    """The server process, spoken to in raw JSON-RPC frames."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.notifications: list[dict[str, Any]] = []
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await self.process.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        length = None
        while True:
            line = await within(self.process.stdout.readline())
            assert line, "the server closed its output"
            if line == b"\r\n":
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length is not None
        message: dict[str, Any] = json.loads(await within(self.process.stdout.readexactly(length)))
        return message

    async def request(self, method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
        """The response to one request; ``params=None`` leaves the field out."""
        self.next_id += 1
        msg_id = extra.pop("id", self.next_id)
        message: dict[str, Any] = {"id": msg_id, "method": method, **extra}
        if params is not None:
            message["params"] = params
        await self.send(message)
        while True:
            reply = await self.receive()
            if reply.get("id") == msg_id and "method" not in reply:
                return reply
            self.notifications.append(reply)

    async def notify(self, method: str, params: Any) -> None:
        await self.send({"method": method, "params": params})


async def raw_server(cwd: Path) -> RawServer:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bnblint",
        "server",
        cwd=str(cwd),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    server = RawServer(process)
    init = {"processId": None, "rootUri": cwd.as_uri(), "capabilities": {}}
    reply = await within(server.request("initialize", init), START_TIMEOUT)
    assert "result" in reply, reply
    await server.notify("initialized", {})
    return server


def code_action_params(uri: str, line: int = 0, character: int = 0) -> dict[str, Any]:
    position = {"line": line, "character": character}
    return {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": position},
        "context": {"diagnostics": []},
    }


# -- 1. every request is answered ---------------------------------------------------------


def test_malformed_code_action_requests_are_answered(tmp_path: Path) -> None:
    uri = (tmp_path / "a.py").as_uri()
    good = code_action_params(uri, line=99)
    invalid: list[Any] = [
        {**good, "textDocument": 5},
        {**good, "range": "everything"},
        {**good, "range": {"start": {"line": "x", "character": 0}, "end": good["range"]["end"]}},
        {**good, "context": None},
        {k: v for k, v in good.items() if k != "textDocument"},
        {k: v for k, v in good.items() if k != "context"},
        {},
        [],
        "params",
        7,
    ]
    # The converter coerces some wrong types (5 -> "5"): an answer either way, never silence.
    coercible: list[Any] = [
        {**good, "textDocument": {"uri": 5}},
        {**good, "range": {"start": {"line": -1, "character": 0}, "end": good["range"]["end"]}},
        {**good, "range": {"start": {"line": 1.5, "character": 0}, "end": good["range"]["end"]}},
        {**good, "context": {"diagnostics": [], "only": 5}},
        {**good, "context": {"diagnostics": [{"range": 1}]}},
    ]
    far = {"line": 10**6, "character": 10**6}
    # Well-formed, but about nothing the server knows: answered with no actions.
    nothing_to_offer: list[Any] = [
        code_action_params((tmp_path / "never_opened.py").as_uri(), line=3),
        code_action_params("not a uri at all"),
    ]
    # Ranges past the end, or ending before they start: no quick fix; fix-all has no range.
    no_quick_fix: list[Any] = [
        {**good, "range": {"start": {"line": 10**6, "character": 0}, "end": far}},
        {**good, "range": {"start": good["range"]["end"], "end": {"line": 0, "character": 0}}},
    ]

    async def main() -> None:
        server = await raw_server(tmp_path)
        try:
            item = {"uri": uri, "languageId": "python", "version": 1, "text": BROKEN}
            await server.notify("textDocument/didOpen", {"textDocument": item})
            for params in invalid:
                reply = await server.request("textDocument/codeAction", params)
                assert reply.get("error", {}).get("code") == INVALID_PARAMS, (params, reply)
                assert "textDocument/codeAction" in reply["error"]["message"]
            for params in coercible:
                reply = await server.request("textDocument/codeAction", params)
                error = reply.get("error", {}).get("code")
                assert error == INVALID_PARAMS or isinstance(reply.get("result"), list), reply
            missing = await server.request("textDocument/codeAction", None, id="no-params")
            assert missing["error"]["code"] == INVALID_PARAMS
            for params in nothing_to_offer:
                reply = await server.request("textDocument/codeAction", params)
                assert reply.get("result") == [], (params, reply)
            for params in no_quick_fix:
                reply = await server.request("textDocument/codeAction", params)
                assert [a["kind"] for a in reply["result"]] == ["source.fixAll.bnblint"]
            # Still serving: the document's fixes are offered, also for a range past its end.
            reply = await server.request("textDocument/codeAction", good)
            kinds = sorted(action["kind"] for action in reply["result"])
            assert kinds == ["quickfix", "quickfix", "source.fixAll.bnblint"]
            beyond = {**good, "range": {"start": good["range"]["start"], "end": far}}
            assert (await server.request("textDocument/codeAction", beyond)) == {
                **reply,
                "id": server.next_id,
            }

            assert (await server.request("shutdown"))["result"] is None
            late = await server.request("textDocument/codeAction", good)
            assert late["error"]["code"] == INVALID_REQUEST  # answered, not dropped
            await server.notify("exit", None)
            assert await within(server.process.wait()) == 0
        finally:
            if server.process.returncode is None:
                server.process.kill()
                await server.process.wait()

    run(main())


# -- 2. an analysis that fails costs one document its findings, never the server ----------


def test_nesting_depth_counts_bracket_tokens() -> None:
    assert nesting_depth("x = ((1))\n") == 0  # few brackets: not even tokenized
    assert nesting_depth(DEEP_PARENS) > MAX_NESTING
    assert nesting_depth("x = " + "[" * 101 + "]" * 101) == MAX_NESTING + 1  # stops early
    brackets = "(" * 150
    assert nesting_depth(f"s = '{brackets}'  # {brackets}\nf(g(1))\n") == 2
    # Text that does not tokenize to its end still counts (raw characters).
    assert nesting_depth('s = """' + brackets) > MAX_NESTING
    assert nesting_depth(brackets) > MAX_NESTING


@pytest.mark.parametrize("deep", [DEEP_PARENS, LONG_SUM], ids=["parens", "long-sum"])
def test_a_failed_analysis_leaves_no_stale_findings(tmp_path: Path, deep: str) -> None:
    uri, other = (tmp_path / "deep.py").as_uri(), (tmp_path / "next.py").as_uri()
    clean = fixed(BROKEN)

    async def main() -> None:
        async with session(tmp_path) as client:
            client.open(uri, BROKEN)
            assert sorted(codes(await client.diagnostics(uri))) == ["BNB001", "BNB002"]
            # Its correct findings are none: the old ones must not stay.
            client.change(uri, clean + deep, version=2)
            diagnostics = await client.diagnostics(uri)
            assert [d.code for d in diagnostics] == [None] * len(diagnostics)
            if deep == DEEP_PARENS:
                (failure,) = diagnostics
                assert "too deeply nested to analyse" in failure.message
            if diagnostics:
                (failure,) = diagnostics
                assert failure.message.startswith("bnblint could not analyse this file")
                assert failure.range.start == types.Position(line=0, character=0)
                assert failure.severity == types.DiagnosticSeverity.Information
                (log,) = client.logs
                assert log.type == types.MessageType.Error and "deep.py" in log.message
            assert await client.actions(uri, EVERYTHING) == []
            assert len(client.logs) <= 1  # the failed run is reused, not re-run and re-logged

            # The server is up and lints the next document, and this one once it is fixed.
            client.open(other, BROKEN)
            assert sorted(codes(await client.diagnostics(other))) == ["BNB001", "BNB002"]
            client.change(uri, BROKEN, version=3)
            assert sorted(codes(await client.diagnostics(uri))) == ["BNB001", "BNB002"]

    run(main())


# -- 3. closing a document drops everything held for it -----------------------------------


def test_close_drops_the_documents_state(tmp_path: Path) -> None:
    uris = [(tmp_path / f"{name}.py").as_uri() for name in ("a", "b")]

    async def main() -> None:
        async with session(tmp_path) as client:
            for uri in uris:
                client.open(uri, BROKEN)
                await client.diagnostics(uri)
                await client.actions(uri, EVERYTHING)  # quick fixes and fix-all cached too
            state = await client.state()
            assert state["open"] == state["cached"] == sorted(uris)
            client.close(uris[0])
            assert await client.diagnostics(uris[0]) == []
            state = await client.state()
            assert state["open"] == state["cached"] == [uris[1]]
            client.close(uris[1])
            await client.diagnostics(uris[1])
            state = await client.state()
            assert state["open"] == state["cached"] == state["linting"] == state["stale"] == []

    run(main())


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_closing_a_large_document_gives_its_memory_back(tmp_path: Path) -> None:
    small, large = (tmp_path / "small.py").as_uri(), (tmp_path / "large.py").as_uri()
    filler = "".join(f"def f{i}(a, b):\n    c = a + b * {i}\n    return c\n" for i in range(2000))

    async def main() -> None:
        async with session(tmp_path) as client:
            assert client._server is not None
            pid = client._server.pid
            client.open(small, BROKEN)  # the analysis's imports are part of the baseline
            await client.diagnostics(small)
            baseline = rss_mb(pid)
            client.open(large, BROKEN + filler)
            assert sorted(codes(await within(client.diagnostics(large), 40))) == [
                "BNB001",
                "BNB002",
            ]
            grown = rss_mb(pid) - baseline
            client.close(large)
            await client.diagnostics(large)
            await client.state()  # the close has been handled
            held = rss_mb(pid) - baseline
            assert held <= max(20.0, grown / 4), (baseline, grown, held)

    run(main())


# -- 4. one analysis per document version, settings and kind ------------------------------


def test_code_actions_reuse_the_analysis(tmp_path: Path) -> None:
    uri = (tmp_path / "a.py").as_uri()

    async def analyses(client: Client) -> int:
        return int((await client.state())["analyses"])

    async def main() -> None:
        async with session(tmp_path) as client:
            client.open(uri, BROKEN)
            await client.diagnostics(uri)
            assert await analyses(client) == 1
            first = await client.actions(uri, EVERYTHING)  # quick-fix edits, then fix-all
            assert await analyses(client) == 3
            for _ in range(3):
                assert await client.actions(uri, EVERYTHING) == first
                assert await client.actions(uri, EVERYTHING, only=["quickfix"])
                assert await client.actions(uri, EVERYTHING, only=["source.fixAll"])
            assert await analyses(client) == 3
            client.text_document_did_save(
                types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
            )
            assert sorted(codes(await client.diagnostics(uri))) == ["BNB001", "BNB002"]
            assert await analyses(client) == 3  # same text, same settings

    run(main())


def test_code_actions_follow_changes_and_settings(tmp_path: Path) -> None:
    uri = (tmp_path / "a.py").as_uri()

    def fixed_codes(actions: list[types.CodeAction]) -> list[str]:
        return sorted(codes([d for a in actions for d in a.diagnostics or []]))

    async def main() -> None:
        async with session(tmp_path) as client:
            client.open(uri, BROKEN)
            await client.diagnostics(uri)
            actions = await client.actions(uri, EVERYTHING, only=["quickfix"])
            assert fixed_codes(actions) == ["BNB001", "BNB002"]
            bnb002 = next(a for a in actions if fixed_codes([a]) == ["BNB002"])
            assert bnb002.edit is not None and bnb002.edit.changes is not None
            text = apply_edits(BROKEN, bnb002.edit.changes[uri])

            client.change(uri, text, version=2)
            assert codes(await client.diagnostics(uri)) == ["BNB001"]
            (left,) = await client.actions(uri, EVERYTHING, only=["quickfix"])
            assert fixed_codes([left]) == ["BNB001"]  # the new text's, not the cached one's
            (fix_all,) = await client.actions(uri, EVERYTHING, only=["source.fixAll"])
            assert fix_all.edit is not None and fix_all.edit.changes is not None
            assert apply_edits(text, fix_all.edit.changes[uri]) == fixed(text)

            # A changed configuration is new settings: the cached analysis is not reused.
            before = (await client.state())["analyses"]
            (tmp_path / "pyproject.toml").write_text('[tool.bnblint]\nignore = ["BNB001"]\n')
            assert await client.actions(uri, EVERYTHING) == []
            assert (await client.state())["analyses"] == before + 2

    run(main())


def test_concurrent_code_actions_share_one_analysis(tmp_path: Path) -> None:
    """A code action arriving while its version is being linted waits for that lint."""
    uri = (tmp_path / "a.py").as_uri()
    filler = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300))

    async def main() -> None:
        async with session(tmp_path) as client:
            client.open(uri, BROKEN + filler)
            actions = await within(
                asyncio.gather(
                    client.actions(uri, EVERYTHING, only=["quickfix"]),
                    client.actions(uri, EVERYTHING, only=["quickfix"]),
                ),
                TIMEOUT,
            )
            assert actions[0] == actions[1] and len(actions[0]) == 2
            await client.diagnostics(uri)
            assert (await client.state())["analyses"] == 2  # diagnostics, and edits once

    run(main())
