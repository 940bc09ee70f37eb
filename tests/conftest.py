import sys
from pathlib import Path

import pytest

# fixture_cases.py is shared by the tests and the fixture update command.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _not_in_github_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI adds annotations under GitHub Actions; tests that want that set it themselves.
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
