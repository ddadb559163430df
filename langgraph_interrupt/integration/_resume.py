"""Resuming an interrupted answer: "as I was saying…".

Owns: finding the partial answer a cancel cut off (the repair saved it in the thread as an
``AIMessage`` marked cancelled) and the instruction that lets the model continue it in a
new run, as a new assistant message, without repeating what the user already saw. Two ways
to use it: ``run_graph(..., resume_interrupted=True)`` adds the instruction to the run's
input (so it is in the thread, marked, after the user's new message), or
:func:`resume_messages` inside your model node (nothing persisted).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from ._translate import CANCELLED_MARK

__all__ = ["RESUME_MARK", "interrupted_answer", "resume_instruction", "resume_messages"]

#: ``additional_kwargs`` key on the instruction, so a UI or a later step can tell it apart
#: from what the user typed (it is never published on the channel).
RESUME_MARK = "langgraph_interrupt_resume"
_SHOWN_TAIL = 400  # characters of the partial answer quoted back to the model


def interrupted_answer(messages: Sequence[BaseMessage]) -> AIMessage | None:
    """The last assistant message, if a cancel cut it off (its partial text was saved by
    the repair) and no assistant message came after it; else ``None``."""
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            marked = message.response_metadata.get(CANCELLED_MARK) or \
                message.additional_kwargs.get(CANCELLED_MARK)
            return message if marked and message.text.strip() else None
    return None


def resume_instruction(partial: AIMessage) -> HumanMessage:
    """What tells the model to pick up where it was cut off, quoting the end of what the
    user saw, so it continues instead of starting over."""
    shown = partial.text.strip()
    tail = shown if len(shown) <= _SHOWN_TAIL else "…" + shown[-_SHOWN_TAIL:]
    return HumanMessage(
        "Your previous answer was interrupted; I saw it up to here: «" + tail + "». "
        "Continue it from exactly that point. Do not repeat what I already saw, and do "
        "not apologise or mention the interruption.",
        additional_kwargs={RESUME_MARK: True})


def resume_messages(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """``messages`` plus the resume instruction when they end with (or after) an interrupted
    answer: call it in your model node, ``model.ainvoke(resume_messages(state["messages"]))``."""
    partial = interrupted_answer(messages)
    if partial is None or any(m.additional_kwargs.get(RESUME_MARK) for m in
                              messages[_index_after(messages, partial):]):
        return list(messages)
    return [*messages, resume_instruction(partial)]


def _index_after(messages: Sequence[BaseMessage], target: BaseMessage) -> int:
    for index, message in enumerate(messages):
        if message is target:
            return index + 1
    return len(messages)
