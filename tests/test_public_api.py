"""The public surface is curated: pinned, sorted, importable, and layered."""

from __future__ import annotations

import ast
from pathlib import Path

import langgraph_interrupt

PACKAGE = Path(langgraph_interrupt.__file__).parent

PUBLIC = [
    "AITransportError", "AblyChannel", "AbortController", "AbortSignal", "AgentRequest",
    "AgentSession", "BargeIn", "BargeInCancel", "CancelMode", "CancelReason", "CancelRequest",
    "CancelSource", "CancellableToolNode", "Channel", "ChannelContinuityLostError",
    "ChannelError", "ChannelMessage", "ClientSession", "EncoderRecoveryFailedError", "ErrorCode",
    "GraphOutcome", "HistoryFetchFailedError", "HistoryPage", "InMemoryBroker", "InMemoryChannel",
    "InputEventNotFoundError", "Interruption", "InvalidArgumentError", "InvalidInvocationError",
    "Invocation", "MultitaskStrategy", "MutableMessagesDisabledError", "OperationCancelledError",
    "OutboundMessage", "PipeResult", "Run", "RunCallbackHandler", "RunCancelled",
    "RunCancelledError", "RunInfo", "RunLifecycleError", "RunProgress", "RunRejectedError",
    "SendHandle", "SessionClosedError", "StreamError", "UIMessageDecoder",
    "UIMessageEncoder", "UnsupportedChunkError", "WireRecord", "WorkerLostError", "WorkerRegistry",
    "__version__", "cancellable",
    "create_agent_app", "get_abort_signal", "run_graph",
]


def test_the_public_api_is_exactly_the_pinned_list() -> None:
    assert langgraph_interrupt.__all__ == PUBLIC


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert langgraph_interrupt.__all__ == sorted(langgraph_interrupt.__all__)
    for name in langgraph_interrupt.__all__:
        assert getattr(langgraph_interrupt, name) is not None


def test_the_issue_required_names_are_exported() -> None:
    required = {"AbortController", "AbortSignal", "Invocation", "InMemoryBroker",
                "AgentSession", "Run", "ClientSession"}
    assert required <= set(langgraph_interrupt.__all__)


# Layers, lowest first: each module may import only from its own layer or below.
LAYERS = [
    {"_errors", "_wire", "_version", "_cancel", "_eager"},
    {"_invocation"},
    {"_abort"},
    {"codec"},
    {"channels"},
    {"transport"},
    {"integration"},
    {"server"},
    {"testing"},
]
STDLIB_ONLY = {"_errors", "_wire", "_cancel", "_abort", "_version", "_eager"}


def _layer(top: str) -> int:
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"module {top!r} has no layer")


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, 0) for alias in node.names)
    return found


def test_each_layer_imports_only_layers_below_it() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py" and rel.parent == Path("."):
            continue
        top = rel.parts[0].removesuffix(".py")
        here = _layer(top)
        for module, level in _imports(path):
            if level == 0:
                root = module.split(".")[0]
                if root == "langgraph_interrupt":
                    target = module.split(".")[1]
                    assert _layer(target) <= here, f"{rel} imports {module}"
                if top in STDLIB_ONLY:
                    assert root in {"__future__", "asyncio", "collections", "dataclasses",
                                    "enum", "logging", "math", "threading", "time", "types",
                                    "typing", "uuid"}, (
                        f"{rel} must stay stdlib-only, imports {module}")
                assert root != "ably" or rel == Path("channels/_ably.py"), (
                    f"only channels/_ably.py may import ably ({rel})")
                assert root not in {"langchain_core", "langgraph", "langchain"} or top in (
                    "integration", "server", "testing"), f"{rel} imports {module}"
                assert root not in {"starlette", "uvicorn"} or top in ("server", "testing"), (
                    f"{rel} imports {module}: the HTTP endpoint is the optional 'server' extra")
                continue
            base = rel.parts[:-1] if level == 1 else rel.parts[: max(len(rel.parts) - level, 0)]
            target_parts = [*base, *[p for p in module.split(".") if p]]
            target = target_parts[0] if target_parts else top
            assert _layer(target.removesuffix(".py")) <= here, f"{rel} imports {module}"


def test_the_transport_imports_without_langchain_and_the_integration_loads_on_use() -> None:
    import subprocess
    import sys

    code = ("import sys, langgraph_interrupt as li; assert 'langchain_core' not in sys.modules; "
            "li.run_graph; assert 'langchain_core' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
