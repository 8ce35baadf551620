"""Example student 'dmitri' (see ../labsmtp.py): mistakes: {"ok-to-anything"}."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from labsmtp import run  # noqa: E402

run({"ok-to-anything"})
