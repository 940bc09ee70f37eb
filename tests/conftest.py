import sys
from pathlib import Path

# fixture_cases.py is shared by the tests and the fixture update command.
sys.path.insert(0, str(Path(__file__).resolve().parent))
