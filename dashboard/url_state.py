"""Widgets whose value lives in the URL (st.query_params), so a copied link shows the same view.

The URL wins when it changed since this session last wrote it (a pasted link, a page link with
parameters); otherwise the widget's own state does. Values not among the options are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st


def _url_changed(key: str, url_value: list[str]) -> bool:
    return st.session_state.get(f"_url:{key}") != url_value


def _write(key: str, values: list[str]) -> None:
    if values:
        st.query_params[key] = values if len(values) > 1 else values[0]
    elif key in st.query_params:
        del st.query_params[key]
    st.session_state[f"_url:{key}"] = values


def multiselect(label: str, key: str, options: Sequence[str], where: Any = None, **kw: Any) -> list[str]:
    """A multiselect backed by `?key=a&key=b`."""
    where = where or st.sidebar
    url_value = st.query_params.get_all(key)
    if key not in st.session_state or _url_changed(key, url_value):
        st.session_state[key] = [v for v in url_value if v in options]
    else:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]
    values: list[str] = where.multiselect(label, list(options), key=key, **kw)
    _write(key, values)
    return values


def selectbox(
    label: str, key: str, options: Sequence[str], default: str | None = None, where: Any = None, **kw: Any
) -> str | None:
    """A selectbox backed by `?key=value`; `default` when the URL names nothing valid."""
    where = where or st.sidebar
    if not options:
        return None
    url_value = st.query_params.get_all(key)
    if key not in st.session_state or _url_changed(key, url_value):
        wanted = url_value[0] if url_value else default
        st.session_state[key] = (
            wanted if wanted in options else (default if default in options else options[0])
        )
    elif st.session_state[key] not in options:
        st.session_state[key] = default if default in options else options[0]
    value: str = where.selectbox(label, list(options), key=key, **kw)
    _write(key, [value] if value is not None and value != default else [])
    return value


def number(
    label: str, key: str, options: Sequence[int], default: int, where: Any = None, format_func: Any = str
) -> int:
    """A choice among integers backed by `?key=N`."""
    texts = [str(o) for o in options]
    value = selectbox(label, key, texts, str(default), where=where, format_func=lambda t: format_func(int(t)))
    return int(value) if value is not None else default


def text(label: str, key: str, where: Any = None, **kw: Any) -> str:
    """A text input backed by `?key=value` (empty: not in the URL)."""
    where = where or st.sidebar
    url_value = st.query_params.get_all(key)
    if key not in st.session_state or _url_changed(key, url_value):
        st.session_state[key] = url_value[0] if url_value else ""
    value: str = where.text_input(label, key=key, **kw)
    _write(key, [value.strip()] if value.strip() else [])
    return value.strip()
