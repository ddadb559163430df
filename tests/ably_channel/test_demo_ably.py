"""The demo runs over the offline Ably broker with the real SDK (``--ably-local``)."""

from __future__ import annotations

import re

from tests.test_docs import assert_demo_story, run_demo


def test_the_demo_over_the_offline_ably_broker_stops_mid_tool_then_answers() -> None:
    out = run_demo("--ably-local")
    assert re.search(r"offline Ably broker on http://127\.0\.0\.1:\d+, real ably-python SDK",
                     out.splitlines()[0])
    assert_demo_story(out)
