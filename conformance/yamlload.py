"""YAML loading that remembers where every value came from.

PyYAML's constructed objects forget their lines and silently accept duplicate keys; scenario errors must
say `file:line`, so we compose nodes ourselves and keep a map from value paths to lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

# libyaml composes ~10x faster and its nodes keep line marks too; the pure-Python loader is the fallback
# when PyYAML was built without it, and is what reports errors (same words on every installation).
FAST_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Document:
    data: Any
    lines: dict[Path, tuple[int, int]]  # path -> (first line, last line), 1-based
    key_lines: dict[Path, int]  # path of a mapping value -> line of its key
    scalar_text: dict[Path, str]  # the source spelling of scalars (section 4.10 is not the float 4.1)

    def line(self, path: Path) -> int:
        """The most specific known line for a path (a missing key reports its mapping's line)."""
        for cut in range(len(path), -1, -1):
            sub = tuple(path[:cut])
            if sub in self.key_lines:
                return self.key_lines[sub]
            if sub in self.lines:
                return self.lines[sub][0]
        return 1


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.scalars = SafeConstructor()
        self.count = 0

    def _close(self, node: Node, path: Path, children: list[Path]) -> None:
        """The last line a node occupies. A block collection ends where its last child ends (its end mark
        is already on the next item's line); scalars and flow collections end at their end mark."""
        first = self.doc.lines[path][0]
        if getattr(node, "flow_style", False) or not children:
            mark = node.end_mark
            last = mark.line if mark.column == 0 else mark.line + 1
        else:
            last = max(self.doc.lines[c][1] for c in children)
        self.doc.lines[path] = (first, max(first, last))

    def build(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if depth > 64 or self.count > 200_000:
            # anchors and aliases can expand exponentially: refuse instead of eating memory
            raise YamlError(node.start_mark.line + 1, "YAML nested or aliased too deeply")
        first = node.start_mark.line + 1
        self.doc.lines[path] = (first, first)
        if isinstance(node, MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise YamlError(key_node.start_mark.line + 1, "mapping keys must be plain words")
                key = self.scalars.construct_object(key_node)
                if key == "<<":
                    raise YamlError(key_node.start_mark.line + 1, "YAML merge keys (<<) are not supported")
                key = str(key)
                if key in result:
                    raise YamlError(key_node.start_mark.line + 1, f"duplicate key '{key}'")
                self.doc.key_lines[path + (key,)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, path + (key,), depth + 1)
            self._close(node, path, [path + (str(k),) for k in result])
            return result
        if isinstance(node, SequenceNode):
            items = [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
            self._close(node, path, [path + (i,) for i in range(len(items))])
            return items
        self._close(node, path, [])
        self.doc.scalar_text[path] = str(node.value)
        if node.tag == "tag:yaml.org,2002:timestamp":
            return str(node.value)  # YAML 1.1 dates: an id like 4954-15-01 is text here, never a date
        try:
            return self.scalars.construct_object(node)
        except (yaml.constructor.ConstructorError, ValueError, OverflowError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise YamlError(node.start_mark.line + 1, f"bad value: {problem}") from None


def load_documents(text: str) -> list[Document]:
    """All non-empty documents of a YAML stream, with line maps. Raises YamlError."""
    if FAST_LOADER is not yaml.SafeLoader:
        try:
            nodes = list(yaml.compose_all(text, Loader=FAST_LOADER))
        except (yaml.YAMLError, RecursionError):
            nodes = None  # say what is wrong as the pure-Python loader says it
        if nodes is not None:
            return _documents(nodes)
    return _documents(yaml.compose_all(text, Loader=yaml.SafeLoader))


def _documents(nodes: Any) -> list[Document]:
    docs: list[Document] = []
    try:
        for node in nodes:
            if node is None:
                continue
            doc = Document(data=None, lines={}, key_lines={}, scalar_text={})
            doc.data = _Builder(doc).build(node, ())
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context_mark is not None and "end of stream" in problem:
            # an unclosed quote or bracket: where it was opened is where the mistake is
            problem = f"{exc.context} (line {exc.context_mark.line + 1}) was never closed: {problem}"
            mark = exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlError(line, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"YAML error: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise YamlError(1, "YAML nested too deeply") from None
    return docs
