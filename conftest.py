"""Root conftest: keeps pytest out of folders that hold no tests of ours.

The SMTP conformance plugin itself is registered through the `pytest11` entry point (pyproject.toml), so
it works the same in this repository and in any project that installs smtp-conformance.
"""

collect_ignore_glob = [".venv/*", ".cache/*", "reports/*", "docs/*", "images/*", "node_modules/*"]
