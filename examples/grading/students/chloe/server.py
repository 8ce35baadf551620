"""Example student 'chloe' (see ../labsmtp.py): mistakes: {"one-at-a-time"}."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from labsmtp import run  # noqa: E402

run({"one-at-a-time"})
