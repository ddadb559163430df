"""The examples' model: a real one when the environment has a provider key, else the
scripted fake each example passes (so every example also runs offline, as the tests do)."""

from __future__ import annotations

import importlib.util
import os

from langchain_core.language_models import BaseChatModel


def chat_model(fake: BaseChatModel) -> BaseChatModel:
    """OpenAI with OPENAI_API_KEY and langchain-openai installed (OPENAI_MODEL picks the
    model), else Anthropic with ANTHROPIC_API_KEY and langchain-anthropic (ANTHROPIC_MODEL),
    else ``fake``. Neither provider package is a dependency of langgraph_interrupt."""
    if os.environ.get("OPENAI_API_KEY") and importlib.util.find_spec("langchain_openai"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    if os.environ.get("ANTHROPIC_API_KEY") and importlib.util.find_spec("langchain_anthropic"):
        from langchain_anthropic import ChatAnthropic

        return ChatAnthropic(model=os.environ.get("ANTHROPIC_MODEL", "claude-haiku-4-5"))
    return fake
