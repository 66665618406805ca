"""The quarterly review's Markdown and HTML read back as a person reads them: per section, its tables
(header and rows of cell text), its list items and its paragraphs, so tests can compare what the two
formats say, and the figures each section prints."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from pipelines.outside_text import JOINER


@dataclass
class Section:
    tables: list[list[list[str]]] = field(default_factory=list)  # each: header row, then rows
    items: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def unescape_markdown(text: str) -> str:
    """What a Markdown cell or line reads as: backslash escapes and invisible word joiners removed."""
    return re.sub(r"\\(.)", r"\1", text.replace(JOINER, ""))


def markdown_sections(md: str) -> dict[str, Section]:
    sections: dict[str, Section] = {}
    current: Section | None = None
    table: list[list[str]] | None = None
    for line in md.splitlines():
        if not line.startswith("|"):
            table = None
        if line.startswith("## "):
            current = sections.setdefault(line[3:], Section())
        elif current is None or not line.strip() or line.startswith("_(chart") or line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [unescape_markdown(c.strip()) for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if table is None:
                table = []
                current.tables.append(table)
            table.append(cells)
        elif line.startswith("- "):
            current.items.append(unescape_markdown(line[2:]))
        elif line.startswith(">"):
            text = line.lstrip("> ").strip()
            if text:
                current.texts.append(unescape_markdown(text).strip("*"))
        else:
            current.texts.append("none" if line == "_none_" else unescape_markdown(line))
    return sections


class _HtmlReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, Section] = {}
        self.current: Section | None = None
        self.stack: list[str] = []
        self.buffer: list[str] | None = None
        self.row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.stack.append(tag)
            return
        if tag == "table" and self.current is not None:
            self.current.tables.append([])
        elif tag == "tr":
            self.row = []
        elif tag in ("h2", "th", "td", "li", "p", "strong") and not self._inside("li", "p", "th", "td"):
            self.buffer = []
            self.stack.append(tag)

    def _inside(self, *tags: str) -> bool:
        return any(t in self.stack for t in tags)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.stack and self.stack[-1] == tag:
            self.stack.pop()
            return
        if tag == "tr" and self.row is not None and self.current is not None:
            self.current.tables[-1].append(self.row)
            self.row = None
            return
        if not self.stack or self.stack[-1] != tag or self.buffer is None:
            return
        self.stack.pop()
        text = "".join(self.buffer).strip()
        self.buffer = None
        if tag == "h2":
            self.current = self.sections.setdefault(text, Section())
        elif self.current is None:
            return
        elif tag in ("th", "td") and self.row is not None:
            self.row.append(text)
        elif tag == "li":
            self.current.items.append(text)
        elif tag in ("p", "strong"):
            self.current.texts.append(text)

    def handle_data(self, data: str) -> None:
        if self.buffer is not None and not self._inside("script", "style"):
            self.buffer.append(data)


def html_sections(page: str) -> dict[str, Section]:
    reader = _HtmlReader()
    reader.feed(page)
    return reader.sections
