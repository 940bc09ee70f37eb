"""Writing fixes back, through the real CLI (and the real write function where the timing
must be exact): read-only files, symlinks, hard links, owners, xattrs, concurrent edits."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bnblint.source import SourceError, linted_tree, read_source, write_source

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NOBODY = 65534
CHANGED = "cannot fix: the file changed while bnblint was running"


def bnblint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnblint", "check", "--no-color", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def fixed_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What ``--fix`` makes of BAD in an ordinary file."""
    work = tmp_path_factory.mktemp("reference")
    (work / "m.py").write_text(BAD)
    assert bnblint("--fix", "m.py", cwd=work).returncode == 0
    text = (work / "m.py").read_text()
    assert text != BAD
    return text


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".bnblint")]


def supports_xattr(path: Path) -> bool:
    if not hasattr(os, "setxattr"):
        return False
    try:
        os.setxattr(path, "user.bnblint.probe", b"1")
        os.removexattr(path, "user.bnblint.probe")
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Read-only files
# ---------------------------------------------------------------------------------------------


def test_read_only_file_is_reported_not_rewritten(tmp_path: Path, fixed_text: str) -> None:
    ro = tmp_path / "ro.py"
    ro.write_text(BAD)
    ro.chmod(0o444)
    (tmp_path / "rw.py").write_text(BAD)
    inode = ro.stat().st_ino
    if IS_ROOT:
        assert os.access(ro, os.W_OK)  # root could write it: the mode bits decide
    out = bnblint("--fix", ".", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == "ro.py: cannot fix: the file is read-only\n"
    assert ro.read_text() == BAD
    assert ro.stat().st_ino == inode
    assert stat.S_IMODE(ro.stat().st_mode) == 0o444
    assert (tmp_path / "rw.py").read_text() == fixed_text  # the run went on
    # The unfixed findings are still reported, as remaining.
    assert out.stdout.splitlines()[-1] == "Found 4 errors (2 fixed, 2 remaining)."
    assert [line.split(" ")[0] for line in out.stdout.splitlines()[:-1]] == [
        "ro.py:3:23:",
        "ro.py:4:9:",
    ]
    assert leftovers(tmp_path) == []


def test_read_only_file_is_not_given_noqa(tmp_path: Path) -> None:
    ro = tmp_path / "ro.py"
    ro.write_text(BAD)
    ro.chmod(0o444)
    out = bnblint("--add-noqa", "ro.py", cwd=tmp_path)
    assert out.returncode == 1
    assert "ro.py: cannot fix: the file is read-only" in out.stderr.splitlines()
    assert ro.read_text() == BAD


# ---------------------------------------------------------------------------------------------
# Symlinks
# ---------------------------------------------------------------------------------------------


def test_symlink_out_of_the_tree_is_reported(tmp_path: Path, fixed_text: str) -> None:
    outside = tmp_path / "shared" / "config.py"
    outside.parent.mkdir()
    outside.write_text(BAD)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "link.py").symlink_to(outside)
    (proj / "own.py").write_text(BAD)
    out = bnblint("--fix", ".", cwd=proj)
    assert out.returncode == 1
    assert out.stderr == (
        "link.py: cannot fix: the file is a symlink to a file outside the linted tree "
        f"({os.path.realpath(outside)})\n"
    )
    assert outside.read_text() == BAD
    assert (proj / "own.py").read_text() == fixed_text
    # Named explicitly, the link is still no licence to edit its target.
    assert bnblint("--fix", "link.py", cwd=proj).returncode == 1
    assert outside.read_text() == BAD
    # Naming the target's directory puts it in the tree.
    out = bnblint("--fix", "link.py", str(outside.parent), cwd=proj)
    assert outside.read_text() == fixed_text, out.stderr
    assert (proj / "link.py").is_symlink()


def test_symlink_inside_the_tree_is_followed(tmp_path: Path, fixed_text: str) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "src").mkdir()
    target = tmp_path / "lib" / "real.py"
    target.write_text(BAD)
    (tmp_path / "src" / "link.py").symlink_to("../lib/real.py")
    # From src/ the target is outside both the cwd and the paths named.
    out = bnblint("--fix", ".", cwd=tmp_path / "src")
    assert out.returncode == 1
    assert "outside the linted tree" in out.stderr
    assert target.read_text() == BAD
    # From the root (cwd), lib/ is in the tree: the target is fixed, the link stays a link.
    out = bnblint("--fix", "src", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert target.read_text() == fixed_text
    assert (tmp_path / "src" / "link.py").is_symlink()
    assert leftovers(tmp_path / "lib") == []


def test_linted_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f.py").write_text("")
    (tmp_path / "ln").symlink_to(tmp_path / "d")
    monkeypatch.chdir(tmp_path / "d")
    real = os.path.realpath(tmp_path)
    assert linted_tree(["-", "../f.py", "../ln"]) == (real, os.path.join(real, "d"))


# ---------------------------------------------------------------------------------------------
# Hard links, owners, groups, xattrs
# ---------------------------------------------------------------------------------------------


def test_hard_links_survive(tmp_path: Path, fixed_text: str) -> None:
    a = tmp_path / "a.py"
    a.write_text(BAD)
    (tmp_path / "other").mkdir()
    b = tmp_path / "other" / "b.py"
    os.link(a, b)
    inode = a.stat().st_ino
    out = bnblint("--fix", "a.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert a.stat().st_ino == b.stat().st_ino == inode  # written in place
    assert a.stat().st_nlink == 2
    assert b.read_text() == fixed_text
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not IS_ROOT, reason="making a file of another owner needs root")
def test_owner_and_group_of_another_user_are_kept(tmp_path: Path, fixed_text: str) -> None:
    theirs = tmp_path / "theirs.py"
    theirs.write_text(BAD)
    theirs.chmod(0o664)
    os.chown(theirs, NOBODY, NOBODY)
    inode = theirs.stat().st_ino
    out = bnblint("--fix", "theirs.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    st = theirs.stat()
    assert (st.st_uid, st.st_gid, st.st_ino) == (NOBODY, NOBODY, inode)
    assert stat.S_IMODE(st.st_mode) == 0o664
    assert theirs.read_text() == fixed_text


@pytest.mark.skipif(not IS_ROOT, reason="making a file of another owner needs root")
def test_read_only_for_its_owner_is_read_only_for_root(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.py"
    theirs.write_text(BAD)
    theirs.chmod(0o466)  # others may write; its owner may not: it is read-only
    os.chown(theirs, NOBODY, NOBODY)
    out = bnblint("--fix", "theirs.py", cwd=tmp_path)
    assert out.stderr == "theirs.py: cannot fix: the file is read-only\n"
    assert theirs.read_text() == BAD


def test_group_and_xattrs_are_kept_on_atomic_replace(tmp_path: Path, fixed_text: str) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text(BAD)
    if not supports_xattr(mine):
        pytest.skip("no user xattrs on this filesystem")
    os.setxattr(mine, "user.origin", b"vendored from x")
    groups = [g for g in os.getgroups() if g != mine.stat().st_gid]
    group = NOBODY if IS_ROOT else (groups[0] if groups else None)
    if group is not None:
        os.chown(mine, -1, group)
    inode = mine.stat().st_ino
    out = bnblint("--fix", "mine.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert mine.stat().st_ino != inode  # replaced atomically: a new inode...
    assert os.getxattr(mine, "user.origin") == b"vendored from x"  # ...with the xattrs
    if group is not None:
        assert mine.stat().st_gid == group
    assert mine.read_text() == fixed_text


def test_xattrs_are_kept_when_written_in_place(tmp_path: Path, fixed_text: str) -> None:
    a = tmp_path / "a.py"
    a.write_text(BAD)
    if not supports_xattr(a):
        pytest.skip("no user xattrs on this filesystem")
    os.link(a, tmp_path / "b.py")
    os.setxattr(a, "user.origin", b"x")
    assert bnblint("--fix", "a.py", cwd=tmp_path).returncode == 0
    assert os.getxattr(tmp_path / "b.py", "user.origin") == b"x"
    assert (tmp_path / "b.py").read_text() == fixed_text


# ---------------------------------------------------------------------------------------------
# Concurrent edits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("links", [1, 2], ids=["atomic-replace", "in-place"])
def test_file_changed_after_reading_is_not_overwritten(
    tmp_path: Path, fixed_text: str, links: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.py"
    path.write_text(BAD)
    if links == 2:
        os.link(path, tmp_path / "twin.py")
    source = read_source(path)
    edited = BAD + "print('saved by the editor meanwhile')\n"
    with path.open("r+") as fh:  # the editor writes in place: same inode, new bytes
        fh.write(edited)
    with pytest.raises(SourceError) as err:
        write_source(source, fixed_text)
    assert str(err.value) == CHANGED
    assert path.read_text() == edited
    assert leftovers(tmp_path) == []
    # Unchanged on disk, the same source object writes.
    path.write_text(BAD)
    write_source(read_source(path), fixed_text)
    assert path.read_text() == fixed_text


def test_file_replaced_after_reading_is_not_overwritten(
    tmp_path: Path, fixed_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.py"
    path.write_text(BAD)
    source = read_source(path)
    (tmp_path / "saved.tmp").write_text("x = 1\n")  # an editor saving by rename
    os.replace(tmp_path / "saved.tmp", path)
    with pytest.raises(SourceError, match="changed while bnblint was running"):
        write_source(source, fixed_text)
    assert path.read_text() == "x = 1\n"


def test_same_file_under_two_names_is_fixed_once(tmp_path: Path, fixed_text: str) -> None:
    # Both names are read before either is written: the second write finds the file changed
    # (by the first) and is refused rather than applying a fix computed from stale bytes.
    path = tmp_path / "m.py"
    path.write_text(BAD)
    (tmp_path / "alias.py").symlink_to("m.py")
    out = bnblint("--fix", "m.py", "alias.py", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr in (f"alias.py: {CHANGED}\n", f"m.py: {CHANGED}\n")
    assert path.read_text() == fixed_text
    assert (tmp_path / "alias.py").is_symlink()
    again = bnblint("--fix", "m.py", "alias.py", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_unwritable_directory_falls_back_to_writing_in_place(
    tmp_path: Path, fixed_text: str
) -> None:
    if IS_ROOT:
        pytest.skip("root may create files in any directory")
    d = tmp_path / "locked"
    d.mkdir()
    (d / "m.py").write_text(BAD)
    d.chmod(0o555)
    try:
        out = bnblint("--fix", "locked/m.py", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert (d / "m.py").read_text() == fixed_text
    finally:
        d.chmod(0o755)
        shutil.rmtree(d)


def _runs_as_nobody() -> bool:
    if not IS_ROOT:
        return False
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import bnblint"],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


@pytest.mark.skipif(not _runs_as_nobody(), reason="needs root and an interpreter nobody can run")
def test_as_another_user_files_of_others(fixed_text: str) -> None:
    # The caller (nobody) may write the directory, so a rename could replace any file in it:
    # root's 0666 file is written in place (root stays the owner), root's 0644 file is
    # read-only for the caller and left alone. Not under tmp_path: pytest makes it 0700.
    work = Path(tempfile.mkdtemp(prefix="bnblint-other-user-"))
    try:
        _check_as_nobody(work, fixed_text)
    finally:
        shutil.rmtree(work)


def _check_as_nobody(work: Path, fixed_text: str) -> None:
    shared, private = work / "shared.py", work / "private.py"
    for path, mode in ((shared, 0o666), (private, 0o644)):
        path.write_text(BAD)
        path.chmod(mode)
    os.chown(work, NOBODY, NOBODY)
    out = subprocess.run(
        [sys.executable, "-m", "bnblint", "check", "--fix", "."],
        cwd=work,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert out.stderr == "private.py: cannot fix: the file is read-only\n"
    assert shared.read_text() == fixed_text
    assert shared.stat().st_uid == 0
    assert private.read_text() == BAD
