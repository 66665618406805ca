"""Known answers for pipelines/outside_text.py: hostile text in, what each output shows, checkable by eye.

J is U+2060 WORD JOINER (invisible); in the rendered Markdown every row reads as its input.
"""

from __future__ import annotations

import re

import pytest

from pipelines.outside_text import JOINER as J
from pipelines.outside_text import markdown, plotly, terminal

ESC = "\x1b"

MARKDOWN = [
    # (input, Markdown source)
    ("Checkout errors", "Checkout errors"),
    ("<img src=http://x>", rf"\<img src=http:{J}//x>"),
    ("![a](http://x/a.png)", rf"!\[a\](http:{J}//x/a.png)"),
    ("[a](javascript:alert(1))", rf"\[a\](javascript:{J}alert(1))"),
    ("<http://x>", rf"\<http:{J}//x>"),
    ("</a> <!-- c --> <?x", r"\</a> \<!-- c --> \<?x"),
    ("p50 < 30 min, 1h/5m>2000", "p50 < 30 min, 1h/5m>2000"),
    ("see https://x.test/p now", f"see https:{J}//x.test/p now"),
    ("www.evil.test", f"www{J}.evil.test"),
    ("WWW.evil.test", f"WWW{J}.evil.test"),
    ("mail me@x.test", f"mail me{J}@x.test"),
    ("@oncall please", "@oncall please"),
    ("mailto:me", f"mailto:{J}me"),
    (":red[RESOLVED]", rf":{J}red\[RESOLVED\]"),
    (":green-badge[ok]", rf":{J}green-badge\[ok\]"),
    (":material/home: :smile: :+1: :100:", f":{J}material/home: :{J}smile: :{J}+1: :{J}100:"),
    ("at 10:30, ratio 3:1", "at 10:30, ratio 3:1"),
    ("cause: disk", "cause: disk"),
    ("**bold** _it_ ~~gone~~ `code`", r"\*\*bold\*\* \_it\_ \~\~gone\~\~ \`code\`"),
    ("a | b", r"a \| b"),
    ("costs $5 and $6", r"costs \$5 and \$6"),
    ("back\\slash", r"back\\slash"),
    ("&lt;b&gt; &#60; AT&T", r"\&lt;b\&gt; \&#60; AT&T"),
    ("# heading", r"\# heading"),
    ("- item", r"\- item"),
    ("+ item", r"\+ item"),
    ("1. first", r"1\. first"),
    ("12) twelfth", r"12\) twelfth"),
    ("=====", r"\====="),
    ("> quote", r"\> quote"),
    ("---", r"\---"),
    ("## two", r"\## two"),
    # Only the forms that make a block are escaped: a number, a negative number, a hashtag, a word
    # with underscores read as written.
    ("99.9%", "99.9%"),
    ("-12.5", "-12.5"),
    ("#hashtag", "#hashtag"),
    ("too_few p99_latency _it_", r"too_few p99_latency \_it\_"),
    # One line by default: a newline cannot start a block, a table row or a fake field.
    ("line one\n# two\r\nthree\rfour", "line one # two three four"),
    ("cell\n|---|\n| x |", r"cell \|---\| \| x \|"),
    ("tab\tand\u2028sep", "tab and sep"),
    # Control characters and escape sequences are dropped.
    (f"{ESC}[2J{ESC}[31mred{ESC}[0m", "red"),
    (f"{ESC}]8;;http://x{ESC}\\click{ESC}]8;;{ESC}\\", "click"),
    ("nul\x00 bell\x07 del\x7f", "nul bell del"),
    (None, ""),
]


@pytest.mark.parametrize(("text", "expected"), MARKDOWN)
def test_markdown(text: str | None, expected: str) -> None:
    assert markdown(text) == expected


def test_markdown_multiline_keeps_lines_and_escapes_each_line_start() -> None:
    text = "Summary:\n# not a heading\n- not a list\n2. not ordered\n\n![x](http://x/i.png)\r\nend"
    assert markdown(text, multiline=True) == (
        "Summary:\n\\# not a heading\n\\- not a list\n2\\. not ordered\n\n"
        f"!\\[x\\](http:{J}//x/i.png)\nend"
    )


def test_markdown_leaves_no_unescaped_link_image_or_html_opener() -> None:
    hostile = '<img src=http://x> ![a](http://x/a.png) [a](javascript:x) <a href="http://x">l</a>'
    out = markdown(hostile)
    # Every [ and < is preceded by a backslash, and no scheme is followed directly by //.
    assert re.search(r"(?<!\\)[\[<]", out) is None
    assert "http://" not in out


TERMINAL = [
    ("Checkout errors", "Checkout errors"),
    (f"{ESC}[2Jcleared", "cleared"),
    (f"{ESC}[1;31mRED{ESC}[0m", "RED"),
    (f"{ESC}]8;;http://x{ESC}\\link{ESC}]8;;{ESC}\\", "link"),
    (f"{ESC}]8;;http://x\x07link{ESC}]8;;\x07", "link"),
    (f"{ESC}]0;new window title\x07rest", "rest"),
    (f"{ESC}Pdevice control{ESC}\\after", "after"),
    (f"{ESC}cfull reset", "full reset"),
    ("\x9b31m8-bit CSI", "8-bit CSI"),
    ("\x9d0;title\x9cafter", "after"),
    (f"unterminated {ESC}]8;;http://x", "unterminated 8;;http://x"),
    ("fake\roverwrite", "fake overwrite"),
    ("two\nlines\tand tab", "two lines and tab"),
    ("bell\x07 backspace\x08 del\x7f nul\x00 c1\x85", "bell backspace del nul c1"),
    ("abc\u202edcba", "abcdcba"),
    ("<img src=http://x> :red[RESOLVED]", "<img src=http://x> :red[RESOLVED]"),
    (None, ""),
]


@pytest.mark.parametrize(("text", "expected"), TERMINAL)
def test_terminal(text: str | None, expected: str) -> None:
    assert terminal(text) == expected


def test_terminal_multiline_keeps_newlines_and_tabs_but_not_carriage_returns() -> None:
    assert terminal(f"one\r\ntwo\tcol\n{ESC}[Athree\r", multiline=True) == "one\ntwo\tcol\nthree\n"


PLOTLY = [
    ("Checkout errors", "Checkout errors"),
    ("<img src=http://x>", "&lt;img src=http://x&gt;"),
    ('<a href="http://x">click</a>', '&lt;a href="http://x"&gt;click&lt;/a&gt;'),
    ("<b>bold</b><br>", "&lt;b&gt;bold&lt;/b&gt;&lt;br&gt;"),
    ("AT&T &lt;", "AT&amp;T &amp;lt;"),
    ("two\nlines", "two lines"),
    (f"{ESC}[31mred", "red"),
]


@pytest.mark.parametrize(("text", "expected"), PLOTLY)
def test_plotly(text: str, expected: str) -> None:
    assert plotly(text) == expected
