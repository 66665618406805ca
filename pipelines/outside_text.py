"""Text from outside (alert titles, actor names, root causes, action items, model output) made safe to show.

Stored text stays exactly as received; these pure functions are applied where it is shown:

- `markdown` for Markdown (the dashboard's st.markdown / st.table / captions, `slo report --format md`,
  the incident documents): the text reads as itself, never as a link, an image, HTML, a heading, a
  Streamlit colour or icon directive, an emoji shortcode or LaTeX.
- `terminal` for the CLI's human output: no control characters and no escape sequences reach the
  terminal (`--json` output keeps the text exactly, JSON-escaped, and does not use this).
- `plotly` for Plotly labels and hover text, which Plotly renders as a subset of HTML.
"""

from __future__ import annotations

import re

# U+2060 WORD JOINER: invisible, zero width, and not a character any Markdown or Streamlit syntax
# accepts where we put it, so it breaks a construct while the text still reads the same. It is kept
# in the output (a reader who copies `http:⁠//x` gets the joiner too; that is the point).
JOINER = "\u2060"

# Escape sequences as a terminal reads them (ECMA-48), 7-bit and 8-bit forms:
#   CSI: ESC [ (or 0x9B) parameters, intermediates, one final byte;
#   OSC, DCS, SOS, PM, APC: ESC ] P X ^ _ (or 0x9D 0x90 0x98 0x9E 0x9F) … until BEL or ST (ESC \ or 0x9C);
#   any other ESC + one character (e.g. ESC c, reset).
# An unterminated string sequence is left to the control-character pass: its ESC is dropped and the
# rest shows as plain text.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x7e]"
)
# C0 controls but tab and newline, DEL, C1 controls; and the bidirectional overrides, embeddings and
# isolates, which make a line display in another order than its characters ("Trojan Source").
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Line breaks other than \n that renderers or terminals honour.
_BREAK = re.compile(r"\r\n?|[\u2028\u2029]")


def _clean(text: object, multiline: bool) -> str:
    """Sequences and controls dropped; line breaks as \\n (multiline) or a space; tabs as a space on
    one line."""
    s = _BREAK.sub("\n", "" if text is None else str(text))
    s = _CONTROL.sub("", _SEQUENCE.sub("", s))
    if not multiline:
        s = s.replace("\n", " ").replace("\t", " ")
    return s


def terminal(text: object, *, multiline: bool = False) -> str:
    """`text` for a terminal: escape sequences (colours, cursor moves, screen clears, OSC 8 hyperlinks,
    window titles) removed whole, other C0/C1 controls and DEL dropped, \\r never reaches the terminal
    (it would let a later part of a line overwrite an earlier one). On one line (the default) newlines
    and tabs become spaces so a value cannot start a fake line of output; `multiline=True` keeps them.
    None shows as ''."""
    return _clean(text, multiline)


# Characters that start or end inline Markdown anywhere: escaped with a backslash (CommonMark lets
# any ASCII punctuation be escaped; these are the ones that matter here):
#   \ escapes itself; ` code; * emphasis; ~ strikethrough (GFM); [ ] links and images (so `(`, `)`
#   and `!` never matter: without an unescaped `[` there is no link or image); | table cells (GFM);
#   $ Streamlit's LaTeX; _ emphasis, except between two letters or digits where it never is
#   (`too_few`, `p99_latency` stay as written).
_INLINE = re.compile(r"([\\`*~\[\]|$]|_(?![0-9A-Za-z])|(?<![0-9A-Za-z])_)")
# < only matters where it could open HTML or an autolink (<img, </a, <!--, <?, <http:…>): "p50 < 30"
# stays as written. > only matters at the start of a line (a block quote): see _LINE_START.
_TAG = re.compile(r"<(?=[A-Za-z/!?])")
# & only matters before an entity (&lt; &#60;), which a renderer would turn into another character.
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
# Streamlit's directives (:red[…], :small[…]), icons (:material/name:) and emoji shortcodes (:smile:,
# :+1:, :100:), and URL schemes GFM turns into links (http://, mailto:, xmpp:): a word joiner after the
# colon breaks every one of them. A colon before a space or punctuation is left alone.
_COLON = re.compile(r":(?=[A-Za-z_+/\-]|\d+:)")
# GFM's other autolink literals: www.example.com and user@example.com.
_WWW = re.compile(r"(?<![0-9A-Za-z])(www)(?=\.)", re.IGNORECASE)
_EMAIL = re.compile(r"(?<=[0-9A-Za-z._+\-])@")
# Block markers at the start of a line (each only in the form that makes a block, so "99.9%" or "-5"
# starting a table cell stay as written): headings (# text), block quotes (>), list items (- text,
# + text, 1. text, 1) text), thematic breaks and setext underlines (---, ===).
_LINE_START = re.compile(
    r"^([ \t]*)(#{1,6}(?=[ \t]|$)|>|[-+](?=[ \t]|$)|-(?=[- \t]*$)|=(?=[= \t]*$)|\d{1,9}(?=[.)](?:[ \t]|$)))",
    re.MULTILINE,
)


def markdown(text: object, *, multiline: bool = False) -> str:
    """`text` as literal Markdown text: what a reader sees rendered is what was received.

    Inline syntax is backslash-escaped (see `_INLINE`); block markers are escaped at the start of each
    line; Streamlit directives, icons, emoji shortcodes and autolinked URLs, e-mail addresses and
    `www.` names are broken with U+2060 WORD JOINER (invisible) after the colon, before the `.` of
    `www.` and before `@`: a Markdown renderer, GitHub's included, turns none of them into a link.
    Control characters and escape sequences are dropped as by `terminal`.

    One line by default (newlines become spaces: a table cell, a list item, a heading); with
    `multiline=True` newlines are kept (model-written paragraphs) and every line is treated the same.
    None shows as ''.
    """
    s = _clean(text, multiline)
    s = _INLINE.sub(r"\\\1", s)
    s = _TAG.sub(r"\\<", s)
    s = _ENTITY.sub(r"\\&", s)
    s = _COLON.sub(":" + JOINER, s)
    s = _WWW.sub(r"\1" + JOINER, s)
    s = _EMAIL.sub(JOINER + "@", s)
    return _LINE_START.sub(_escape_marker, s)


def _escape_marker(m: re.Match[str]) -> str:
    indent, marker = m.group(1), m.group(2)
    if marker.isdigit():  # "1. " → "1\. " : the number stays, the list marker goes
        return f"{indent}{marker}\\"
    return f"{indent}\\{marker}"  # "## x" → "\## x": one escape is enough for the whole run


def plotly(text: object) -> str:
    """`text` for a Plotly label or hover text: Plotly renders <b>, <a href>, <br>, <span style> and
    entities, so & < > are written as entities (shown as themselves); controls dropped, one line.
    Pass it as data (`text=`, `customdata=`), never inside a hovertemplate, where `%{…}` is a
    placeholder."""
    s = _clean(text, multiline=False)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
