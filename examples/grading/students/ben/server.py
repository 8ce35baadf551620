"""Example student 'ben' (see ../labsmtp.py): mistakes: {"no-sequence-checks", "rset-keeps-rcpts"}."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from labsmtp import run  # noqa: E402

run({"no-sequence-checks", "rset-keeps-rcpts"})
