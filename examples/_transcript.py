"""The examples' live transcript: the conversation a ``ClientSession`` folds, printed as it
happens, the way a person reads a chat.

    transcript = Transcript(client)
    client.on_message(transcript)          # every received message updates the transcript
    ...
    transcript.note("Stop pressed")        # something the user did: "[Stop pressed]"

What it prints, one line per change (a streamed text grows on its line, token by token):

    you: What's the weather in Paris?
    [run 1a2b3c4d started]
    assistant: Let me check the weather in Paris.
      -> get_weather(city='Paris')  (input-available)
      .. get_weather pages: 1 2 3                     a progress data part, if configured
      <- get_weather: 18°C and sunny  (output-available)
      x  get_weather: Cancelled ...  (output-error)   a cancelled or failed call
    [run 1a2b3c4d cancelled] reason user_clicked_stop, by user-1

Tool states are the UI-message states the official client and a browser page show
(``input-available``, ``output-available``, ``output-error``, ...). Run statuses and the cancel
reason come from the client's :class:`RunInfo`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langgraph_interrupt import ChannelMessage, ClientSession, RunInfo

#: data part name (without ``data-``) -> (label, the value to print from the part's data)
Progress = Mapping[str, tuple[str, Callable[[Any], object]]]


class Transcript:
    """Prints the conversation of ``client`` as it folds. Pass it to ``client.on_message``.

    ``progress``: data parts shown as one growing progress line instead of a line each, for
    example ``{"crawl-progress": ("crawl_site pages", lambda data: data["page"])}``.
    """

    def __init__(self, client: ClientSession, *, progress: Progress | None = None) -> None:
        self.client = client
        self.progress = dict(progress or {})
        self._seen: dict[tuple[str, int], Any] = {}  # (message id, part index) -> printed
        self._statuses: dict[str, str] = {}  # run id -> the status last printed
        self._inline: str | None = None  # what the open line is: "text" or a progress name

    # -- what the caller prints ---------------------------------------------------------------
    def note(self, text: str) -> None:
        """Something that happened outside the conversation (``[Stop pressed]``)."""
        self.line(f"[{text}]")

    def line(self, text: str, end: str = "\n") -> None:
        """Print ``text`` on a line of its own (ending a streamed line first)."""
        if self._inline is not None:
            print()
            self._inline = None
        print(text, end=end, flush=True)

    # -- the listener ---------------------------------------------------------------------------
    def __call__(self, _message: ChannelMessage) -> None:
        for message in self.client.messages:
            for index, part in enumerate(message["parts"]):
                self._part(message, (message["id"], index), part)
        for run in self.client.runs:
            if self._statuses.get(run.run_id) != run.status:
                self._statuses[run.run_id] = run.status
                self.line(run_line(run))

    def _part(self, message: dict[str, Any], key: tuple[str, int], part: dict[str, Any]) -> None:
        kind = str(part.get("type", ""))
        if kind == "text" and message["role"] == "user":
            if key not in self._seen:
                self._seen[key] = True
                self.line(f"you: {part.get('text', '')}")
        elif kind in ("text", "reasoning"):
            self._stream(key, part.get("text", ""),
                         "assistant: " if kind == "text" else "(thinking) ")
        elif kind.startswith("tool-") or kind == "dynamic-tool":
            self._tool(key, part)
        elif kind.startswith("data-") and key not in self._seen:
            self._seen[key] = True
            self._data(kind[5:], part.get("data"))

    def _stream(self, key: tuple[str, int], text: str, label: str) -> None:
        done = self._seen.get(key, 0)
        if len(text) <= done:
            return
        if not done or self._inline != f"text {key}":
            # A new part, or the same part resumed after something else was printed.
            self.line(label if not done else "  ...", end="")
        print(text[done:], end="", flush=True)
        self._inline = f"text {key}"
        self._seen[key] = len(text)

    def _tool(self, key: tuple[str, int], part: dict[str, Any]) -> None:
        state = part.get("state")
        if self._seen.get(key) == state or state == "input-streaming":
            return
        self._seen[key] = state
        name = part.get("toolName") or str(part["type"])[5:]
        if state == "input-available":
            args = ", ".join(f"{k}={v!r}" for k, v in (part.get("input") or {}).items())
            self.line(f"  -> {name}({args})  ({state})")
        elif state == "output-available":
            self.line(f"  <- {name}: {part.get('output')}  ({state})")
        elif state in ("output-error", "input-error"):  # a cancelled call is an output-error
            self.line(f"  x  {name}: {part.get('errorText')}  ({state})")
        else:  # approval-requested, approval-responded, output-denied
            self.line(f"  ?  {name}  ({state})")

    def _data(self, name: str, data: Any) -> None:
        if name not in self.progress:
            self.line(f"  .. {name}: {data}")
            return
        label, value = self.progress[name]
        if self._inline != name:  # start a progress line, else continue it
            self.line(f"  .. {label}:", end="")
        print(f" {value(data)}", end="", flush=True)
        self._inline = name


def run_line(run: RunInfo) -> str:
    """``[run 1a2b3c4d cancelled] reason user_clicked_stop, by user-1``."""
    status = "started" if run.status == "active" else run.status
    text = f"[run {run.run_id[:8]} {status}]"
    if run.status == "cancelled" and (run.cancel_reason or run.cancelled_by):
        text += f" reason {run.cancel_reason or 'unknown'}"
        if run.cancelled_by:
            text += f", by {run.cancelled_by}"
    elif run.status == "error":
        text += f" {run.error_code}: {run.error_message or ''}".rstrip(": ")
    return text
