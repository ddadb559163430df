"""The browser chat (``scripts/chat.sh``) in headless Chromium, as a user drives it.

The page is the React app of ``web/chat`` on the official client (``@ably/ai-transport``
0.8, its ``useChat`` adapter); the server is ``examples/chat_server.py`` (the offline Ably
broker, the LangGraph agent behind ``create_agent_app``, a strict scripted model whose every
answer calls a slow search tool). The tests find things the way a user's own tests would: the
textbox "Message", the buttons "Send" and "Stop", the conversation ``role="log"``, each
message's ``data-message-role`` and its answer's ``data-run-status``, each tool part's
``data-tool-state``. They wait on those (Playwright's ``expect`` retries), never on time.

The model is strict (it refuses a history a provider would refuse), so "the next message is
answered" after a Stop also proves the agent repaired the thread.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError as error:  # fail, never skip
    raise ImportError(f"{error}: run `bash scripts/setup_browser.sh`") from error

from .harness import REPO, ChatServer, PageErrors

# The README's picture: rewritten only when asked (LGI_UPDATE_SCREENSHOT=1), so that a test
# run leaves the checkout clean; otherwise taken into the test's temporary directory.
SCREENSHOT = REPO / "docs" / "images" / "chat-stopped.png"
TOOL_ENDED = re.compile(r"^output-(available|error)$")
ANSWERED = "I looked at what the search found"  # the scripted model's answer, after the tool


class Chat:
    """One tab of the chat page."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.log = page.get_by_role("log")
        self.box = page.get_by_role("textbox", name="Message")
        self.send_button = page.get_by_role("button", name="Send")
        self.stop_button = page.get_by_role("button", name="Stop")
        self.messages = self.log.locator("[data-message-role]")
        self.answers = self.log.locator('[data-message-role="assistant"]')
        self.alerts = page.get_by_role("alert")

    def open(self, url: str) -> Chat:
        self.page.goto(url)
        return self.ready()

    def ready(self) -> Chat:
        expect(self.send_button).to_be_enabled()  # enabled once the conversation is joined
        return self

    def send(self, text: str) -> None:
        self.box.fill(text)
        self.send_button.click()

    @staticmethod
    def tool(answer: Locator) -> Locator:
        return answer.locator("[data-tool-state]")

    def until(self, index: int, selector: str) -> None:
        """Wait until answer ``index`` matches ``selector`` (or has a match inside), checked on
        every animation frame: ``expect`` polls at intervals of up to a second, too slow to
        press Stop while a tool runs, and slow for a suite that waits for many answers."""
        self.page.wait_for_function(
            """([index, selector]) => {
                 const answer = document.querySelectorAll(
                   '[role=log] [data-message-role=assistant]')[index];
                 return answer !== undefined
                   && (answer.matches(selector) || answer.querySelector(selector) !== null);
               }""",
            arg=[index, selector], polling="raf")

    def answer_running_tool(self, index: int) -> tuple[Locator, Locator]:
        """Answer ``index`` once its search tool runs, so that Stop lands mid-tool."""
        self.until(index, "[data-tool-state=input-available]")
        answer = self.answers.nth(index)
        tool = self.tool(answer)
        expect(tool).to_have_attribute("data-tool-state", "input-available")
        expect(answer).to_have_attribute("data-run-status", "streaming")
        return answer, tool

    def expect_status(self, index: int, status: str) -> Locator:
        self.until(index, f"[data-run-status={status}]")
        answer = self.answers.nth(index)
        expect(answer).to_have_attribute("data-run-status", status)
        return answer

    def expect_answered(self, index: int) -> Locator:
        answer = self.expect_status(index, "complete")
        expect(self.tool(answer)).to_have_attribute("data-tool-state", "output-available")
        expect(answer).to_contain_text(ANSWERED)
        return answer

    def expect_idle(self) -> None:
        expect(self.stop_button).to_be_hidden()
        expect(self.send_button).to_be_enabled()


def new_tab(context: Any, page_errors: PageErrors, url: str) -> Chat:
    return Chat(page_errors.watch(context.new_page())).open(url)


def test_an_answer_streams_with_its_tool_then_completes(chat_server: ChatServer,
                                                        page: Page) -> None:
    page.goto(chat_server.base_url + "/")
    expect(page).to_have_url(re.compile(r"/\?session=[0-9a-f]{8}$"))  # a new conversation
    chat = Chat(page).ready()
    expect(chat.stop_button).to_be_hidden()

    chat.send("When should I visit Kyoto?")
    question = chat.messages.nth(0)
    expect(question).to_have_attribute("data-message-role", "user")
    expect(question).to_contain_text("When should I visit Kyoto?")
    answer, tool = chat.answer_running_tool(0)
    expect(tool).to_have_attribute("data-tool-name", "search_web")
    expect(answer).to_contain_text("Let me search the web")  # streamed before the tool
    expect(answer).not_to_contain_text(ANSWERED)  # ... and the answer comes after it
    expect(chat.stop_button).to_be_visible()

    chat.expect_answered(0)
    chat.expect_idle()
    expect(chat.messages).to_have_count(2)
    expect(chat.alerts).to_have_count(0)


def test_stop_while_the_tool_runs_cancels_the_answer_and_the_next_is_answered(
        chat_server: ChatServer, page: Page, tmp_path: Path) -> None:
    chat = Chat(page).open(chat_server.url("kyoto"))
    chat.send("When should I visit Kyoto?")
    chat.expect_answered(0)
    chat.send("Which festivals are on in April?")
    answer, tool = chat.answer_running_tool(1)

    chat.stop_button.click()
    chat.expect_status(1, "cancelled")
    expect(tool).to_have_attribute("data-tool-state", TOOL_ENDED)  # not left running
    expect(answer.get_by_text("Stopped", exact=True)).to_be_visible()
    expect(answer).not_to_contain_text(ANSWERED)
    chat.expect_idle()
    expect(chat.alerts).to_have_count(0)
    shot = SCREENSHOT if os.environ.get("LGI_UPDATE_SCREENSHOT") == "1" else \
        tmp_path / SCREENSHOT.name
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shot)  # the README's picture
    assert shot.stat().st_size > 10_000, "an empty screenshot"

    chat.send("Never mind the festivals: where should I stay?")
    chat.expect_answered(2)
    expect(answer).to_have_attribute("data-run-status", "cancelled")
    expect(chat.answers.nth(0)).to_have_attribute("data-run-status", "complete")
    expect(chat.messages).to_have_count(6)
    expect(chat.alerts).to_have_count(0)


def test_reload_restores_the_conversation(chat_server: ChatServer, page: Page) -> None:
    url = chat_server.url("reload")
    chat = Chat(page).open(url)
    chat.send("What is the capital of Australia?")
    chat.answer_running_tool(0)
    chat.stop_button.click()
    chat.expect_status(0, "cancelled")
    chat.send("Answer without searching, then")
    chat.expect_answered(1)
    texts = chat.messages.all_text_contents()
    tool_states = [chat.tool(chat.answers.nth(i)).get_attribute("data-tool-state")
                   for i in range(2)]

    page.reload()
    expect(page).to_have_url(url)
    chat.ready()
    expect(chat.messages).to_have_text(texts)  # textContent, as all_text_contents() reads it
    roles = ["user", "assistant", "user", "assistant"]
    for i, role in enumerate(roles):
        expect(chat.messages.nth(i)).to_have_attribute("data-message-role", role)
    expect(chat.answers.nth(0)).to_have_attribute("data-run-status", "cancelled")
    expect(chat.answers.nth(1)).to_have_attribute("data-run-status", "complete")
    for i, state in enumerate(tool_states):
        assert state is not None
        expect(chat.tool(chat.answers.nth(i))).to_have_attribute("data-tool-state", state)
    chat.expect_idle()

    chat.send("And the largest city?")  # the restored conversation goes on
    chat.expect_answered(2)


def test_a_second_tab_sees_the_run_live_and_its_stop_stops_it(
        chat_server: ChatServer, context: Any, page_errors: PageErrors) -> None:
    url = chat_server.url("two-tabs")
    first = new_tab(context, page_errors, url)
    first.send("Which trains go from Zurich to Milan?")
    expect(first.answers.nth(0)).to_have_attribute("data-run-status", "streaming")

    second = new_tab(context, page_errors, url)  # joins while the answer streams
    expect(second.messages.nth(0)).to_contain_text("Which trains go from Zurich to Milan?")
    second.answer_running_tool(0)
    expect(second.stop_button).to_be_visible()
    second.stop_button.click()  # the second tab stops the first tab's run

    for tab in (first, second):
        tab.expect_status(0, "cancelled")
        expect(tab.tool(tab.answers.nth(0))).to_have_attribute("data-tool-state", TOOL_ENDED)
        tab.expect_idle()
        expect(tab.alerts).to_have_count(0)

    first.send("OK, just the fastest one")  # the second tab watches it live
    expect(second.answers.nth(1)).to_have_attribute("data-run-status", "streaming")
    expect(second.tool(second.answers.nth(1))).to_have_attribute("data-tool-state",
                                                                  "input-available")
    expect(second.stop_button).to_be_visible()
    for tab in (first, second):
        tab.expect_answered(1)
        tab.expect_idle()
    expect(second.messages).to_have_text(first.messages.all_text_contents())


def test_an_empty_or_oversized_message_is_not_sent(chat_server: ChatServer,
                                                   page: Page) -> None:
    chat = Chat(page).open(chat_server.url("bad-input"))
    chat.send_button.click()  # nothing typed
    chat.box.fill("  \n\t ")
    chat.send_button.click()  # only blanks
    chat.box.press("Enter")
    big = "x" * (1024 * 1024)
    chat.box.fill(big)
    chat.send_button.click()
    expect(chat.alerts).to_have_count(1)
    expect(chat.alerts).to_contain_text("Not sent: the message is 1,048,576 bytes")
    expect(chat.box).to_have_value(big)  # kept, to shorten
    expect(chat.stop_button).to_be_hidden()

    chat.send("A short question instead")  # typing clears the notice; nothing is broken
    expect(chat.alerts).to_have_count(0)
    chat.expect_answered(0)
    expect(chat.messages).to_have_count(2)  # only this question was sent
    expect(chat.messages.nth(0)).to_have_text(re.compile(r"A short question instead$"))


def test_a_refused_post_shows_an_error_and_the_page_recovers(chat_server: ChatServer,
                                                             page: Page) -> None:
    """The agent endpoint refusing the POST (here 503, as when it shuts down): the official
    client fails the useChat turn, and the page says so instead of waiting forever."""
    refusal = {"error": {"code": 104004, "statusCode": 503, "message": "shutting down"}}
    page.route("**/api/chat", lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps(refusal)))
    chat = Chat(page).open(chat_server.url("refused"))
    chat.send("Is anyone there?")
    expect(chat.alerts).to_contain_text("503")
    chat.expect_idle()

    page.unroute("**/api/chat")
    chat.send("Is anyone there now?")
    expect(chat.alerts).to_have_count(0)
    chat.expect_answered(0)


def test_an_answer_that_fails_is_marked_as_an_error(chat_server: ChatServer,
                                                    page: Page) -> None:
    chat = Chat(page).open(chat_server.url("failing"))
    chat.send("Search, then fail: /error")
    answer = chat.expect_status(0, "error")
    expect(answer.locator(".badge")).to_contain_text("Error")
    expect(chat.tool(answer)).to_have_attribute("data-tool-state", "output-available")
    chat.expect_idle()

    chat.send("Now answer properly")
    chat.expect_answered(1)
    expect(answer).to_have_attribute("data-run-status", "error")


def test_stop_twice_or_after_the_end_is_harmless(chat_server: ChatServer, page: Page) -> None:
    chat = Chat(page).open(chat_server.url("double-stop"))
    chat.send("Find me a quiet beach")
    chat.answer_running_tool(0)
    chat.stop_button.evaluate("button => { button.click(); button.click(); }")  # one task
    chat.expect_status(0, "cancelled")
    chat.expect_idle()

    chat.send("Any beach, then")
    chat.expect_answered(1)
    # A click that lands as the run ends: Stop is hidden by then, but still in the page.
    chat.page.get_by_role("button", name="Stop", include_hidden=True).dispatch_event("click")
    chat.send("And one more")  # a stray cancel would stop this one
    chat.expect_answered(2)
    expect(chat.answers.nth(1)).to_have_attribute("data-run-status", "complete")
    expect(chat.alerts).to_have_count(0)
