"""AppTest runs the dashboard in this process, with no server: bind address as `slo dashboard` sets it.

Without sign-in the dashboard serves the single local user on a loopback address only and refuses any
other (dashboard/auth.py); AppTest leaves `server.address` unset, which for a real server means every
address.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit import config


@pytest.fixture(autouse=True)
def loopback_address() -> Iterator[None]:
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield
    config.set_option("server.address", before)
