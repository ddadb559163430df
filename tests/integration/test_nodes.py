"""@cancellable: skip after a cancel, the signal inside, shielded bodies, signature kept."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime

from langgraph_interrupt import AgentSession, ClientSession
from langgraph_interrupt._abort import AbortController, CancelReason
from langgraph_interrupt.integration import RunCallbackHandler, bind_abort_signal, get_abort_signal
from langgraph_interrupt.integration._nodes import cancellable

Node = Callable[..., Any]


def chain(*nodes: Node, checkpointer: Any = None) -> Any:
    """START -> n0 -> n1 -> ... -> END over MessagesState."""
    builder = StateGraph(MessagesState)
    previous = START
    for i, node in enumerate(nodes):
        builder.add_node(f"n{i}", node)
        builder.add_edge(previous, f"n{i}")
        previous = f"n{i}"
    builder.add_edge(previous, END)
    return builder.compile(checkpointer=checkpointer)


def aborted(message: str = "stop pressed") -> AbortController:
    controller = AbortController()
    controller.abort(CancelReason("client", message))
    return controller


async def run_graph(graph: Any, mode: str, inputs: Any, config: Any = None) -> Any:
    if mode == "sync":
        return await asyncio.to_thread(graph.invoke, inputs, config)
    return await graph.ainvoke(inputs, config)


DECORATORS = {"bare": cancellable, "shielded": cancellable(shielded=True)}


# -- skip ------------------------------------------------------------------------------------
@pytest.mark.parametrize("decorate", DECORATORS.values(), ids=DECORATORS.keys())
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_node_is_skipped_when_the_run_was_cancelled_before_it_started(
        kind: str, decorate: Any) -> None:
    ran: list[str] = []

    def write_sync(state: MessagesState) -> dict[str, Any]:
        ran.append("write")
        return {"messages": [AIMessage("written")]}

    async def write_async(state: MessagesState) -> dict[str, Any]:
        ran.append("write")
        return {"messages": [AIMessage("written")]}

    graph = chain(decorate(write_sync if kind == "sync" else write_async))
    with bind_abort_signal(aborted().signal):
        result = await graph.ainvoke({"messages": [HumanMessage("hi")]})
    assert ran == []
    assert [m.text for m in result["messages"]] == ["hi"], "a skipped node makes no update"


async def test_only_the_nodes_after_the_cancel_are_skipped() -> None:
    controller = AbortController()
    ran: list[str] = []

    @cancellable
    def first(state: MessagesState) -> dict[str, Any]:
        ran.append("first")
        controller.abort("the user pressed stop while this node ran")
        return {"messages": [AIMessage("first")]}

    @cancellable
    async def second(state: MessagesState) -> dict[str, Any]:
        ran.append("second")
        return {"messages": [AIMessage("second")]}

    with bind_abort_signal(controller.signal):
        result = await chain(first, second).ainvoke({"messages": [HumanMessage("hi")]})
    assert ran == ["first"]
    assert [m.text for m in result["messages"]] == ["hi", "first"]


async def test_a_drop_in_run_skips_nodes_after_the_client_cancels(
        client: ClientSession, agent: AgentSession) -> None:
    """No binding: the scope comes from the RunCallbackHandler in the config (as with
    run_graph, the handler itself does not stop the graph here)."""
    started = asyncio.Event()
    ran: list[str] = []

    @cancellable
    async def wait_for_stop(state: MessagesState) -> dict[str, Any]:
        ran.append("wait")
        started.set()
        reason = await get_abort_signal().wait()
        return {"messages": [AIMessage(f"stopped: {reason.source}")]}

    @cancellable
    def answer(state: MessagesState) -> dict[str, Any]:
        ran.append("answer")
        return {"messages": [AIMessage("answer")]}

    graph = chain(wait_for_stop, answer)
    handle = await client.send("go")
    async with agent.create_run(handle.invocation) as run:
        handler = RunCallbackHandler(run, stop_on_cancel=False)
        task = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("go")]},
                                                 config={"callbacks": [handler]}))
        await started.wait()
        await handle.cancel()
        result = await task
    assert (await handle.wait_ended()).status == "cancelled"
    assert ran == ["wait"]
    assert [m.text for m in result["messages"]] == ["go", "stopped: client"]


# -- signal, signature and injection --------------------------------------------------------
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_body_keeps_the_drop_in_signal_under_a_runnable_with_its_own_callbacks(
        kind: str, client: ClientSession, agent: AgentSession) -> None:
    """Drop-in mode finds the run through the callbacks in the config; code in the body that
    runs a runnable with other callbacks loses them, but not the signal the node bound."""
    probe: RunnableLambda[Any, Any] = RunnableLambda(lambda _: get_abort_signal())
    seen: list[Any] = []

    def node_sync(state: MessagesState) -> dict[str, Any]:
        seen.append(probe.invoke(None, {"callbacks": []}))
        return {"messages": [AIMessage("done")]}

    async def node_async(state: MessagesState) -> dict[str, Any]:
        seen.append(await probe.ainvoke(None, {"callbacks": []}))
        return {"messages": [AIMessage("done")]}

    graph = chain(cancellable(node_sync if kind == "sync" else node_async))
    handle = await client.send("go")
    async with agent.create_run(handle.invocation) as run:
        await graph.ainvoke({"messages": [HumanMessage("go")]},
                            config={"callbacks": [RunCallbackHandler(run)]})
        assert seen == [run.signal]


@pytest.mark.parametrize("decorate", DECORATORS.values(), ids=DECORATORS.keys())
@pytest.mark.parametrize(("mode", "kind"), [("sync", "sync"), ("async", "sync"),
                                            ("async", "async")])  # no async node under invoke
async def test_config_and_runtime_are_still_injected_and_the_body_sees_the_signal(
        mode: str, kind: str, decorate: Any) -> None:
    seen: dict[str, Any] = {}

    def record(state: MessagesState, config: RunnableConfig, runtime: Runtime[Any]) -> None:
        seen["thread"] = config["configurable"]["thread_id"]
        seen["node"] = config["metadata"]["langgraph_node"]
        seen["runtime"] = runtime
        seen["signal"] = get_abort_signal()
        seen["messages"] = [m.text for m in state["messages"]]

    def node_sync(state: MessagesState, config: RunnableConfig,
                  runtime: Runtime[Any]) -> dict[str, Any]:
        record(state, config, runtime)
        return {"messages": [AIMessage("done")]}

    async def node_async(state: MessagesState, config: RunnableConfig,
                         runtime: Runtime[Any]) -> dict[str, Any]:
        record(state, config, runtime)
        return {"messages": [AIMessage("done")]}

    original = node_sync if kind == "sync" else node_async
    decorated = decorate(original)
    assert inspect.signature(decorated) == inspect.signature(original)
    assert inspect.iscoroutinefunction(decorated) == (kind == "async")
    controller = AbortController()
    graph = chain(decorated, checkpointer=InMemorySaver())
    with bind_abort_signal(controller.signal):
        result = await run_graph(graph, mode, {"messages": [HumanMessage("hi")]},
                                 {"configurable": {"thread_id": "t-inject"}})
    assert seen["thread"] == "t-inject"
    assert seen["node"] == "n0"
    assert isinstance(seen["runtime"], Runtime)
    assert seen["signal"] is controller.signal
    assert seen["messages"] == ["hi"]
    assert [m.text for m in result["messages"]] == ["hi", "done"]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_outside_a_run_the_decorator_is_transparent(kind: str) -> None:
    seen: list[Any] = []

    def node_sync(state: MessagesState) -> dict[str, Any]:
        seen.append(get_abort_signal())
        return {"messages": [AIMessage("done")]}

    async def node_async(state: MessagesState) -> dict[str, Any]:
        seen.append(get_abort_signal())
        return {"messages": [AIMessage("done")]}

    graph = chain(cancellable(shielded=True)(node_sync if kind == "sync" else node_async))
    result = await graph.ainvoke({"messages": [HumanMessage("hi")]})
    assert [m.text for m in result["messages"]] == ["hi", "done"]
    assert len(seen) == 1 and not seen[0].aborted


def test_the_decorator_refuses_what_it_cannot_guard() -> None:
    def generator_node(state: MessagesState) -> Any:
        yield {"messages": []}

    with pytest.raises(TypeError, match="generator"):
        cancellable(generator_node)
    with pytest.raises(TypeError):
        cancellable(42)  # type: ignore[call-overload]


# -- shielded --------------------------------------------------------------------------------
async def test_a_shielded_async_body_finishes_although_the_graph_task_is_cancelled() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    log: list[str] = []
    node_tasks: list[asyncio.Task[Any]] = []

    @cancellable(shielded=True)
    async def save(state: MessagesState) -> dict[str, Any]:
        log.append("start")
        entered.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            log.append("interrupted")
            raise
        log.append("saved")
        return {"messages": [AIMessage("saved")]}

    async def node(state: MessagesState) -> Any:
        # Not part of the decorator: lets the test see when the cancel reached the node.
        task = asyncio.current_task()
        assert task is not None
        node_tasks.append(task)
        return await save(state)

    with bind_abort_signal(AbortController().signal) as scope:
        graph_task = asyncio.create_task(chain(node).ainvoke({"messages": [HumanMessage("x")]}))
        await entered.wait()
        assert scope.in_critical_section
        graph_task.cancel()
        for _ in range(1000):  # yield to the loop until LangGraph has cancelled the node
            if node_tasks[0].cancelling():
                break
            await asyncio.sleep(0)
        assert node_tasks[0].cancelling(), "the cancel never reached the node"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await graph_task
        assert log == ["start", "saved"], "the shielded body was interrupted"
        assert not scope.in_critical_section


async def test_a_cancel_during_a_shielded_node_keeps_its_write_and_skips_the_next_node(
        ) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    controller = AbortController()
    ran: list[str] = []

    @cancellable(shielded=True)
    async def save(state: MessagesState) -> dict[str, Any]:
        entered.set()
        await release.wait()
        return {"messages": [AIMessage("saved")]}

    @cancellable
    def after(state: MessagesState) -> dict[str, Any]:
        ran.append("after")
        return {"messages": [AIMessage("after")]}

    graph = chain(save, after, checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-shielded"}}
    with bind_abort_signal(controller.signal) as scope:
        graph_task = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("x")]},
                                                       config))
        await entered.wait()
        controller.abort("stop")
        idle = asyncio.create_task(scope.idle())
        release.set()
        assert await idle
        await graph_task
    assert ran == []
    state = await graph.aget_state(config)
    assert [m.text for m in state.values["messages"]] == ["x", "saved"]


async def test_a_shielded_sync_body_is_a_critical_section_while_it_runs() -> None:
    entered = threading.Event()
    release = threading.Event()

    @cancellable(shielded=True)
    def save(state: MessagesState) -> dict[str, Any]:
        entered.set()
        assert release.wait(10)
        return {"messages": [AIMessage("saved")]}

    @cancellable
    def plain(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("plain")]}

    with bind_abort_signal(AbortController().signal) as scope:
        graph_task = asyncio.create_task(
            chain(save, plain).ainvoke({"messages": [HumanMessage("x")]}))
        assert await asyncio.to_thread(entered.wait, 10)
        try:
            assert scope.in_critical_section, "a cancel would not wait for the sync body"
        finally:
            release.set()
        result = await graph_task
        assert not scope.in_critical_section
    assert [m.text for m in result["messages"]] == ["x", "saved", "plain"]


async def test_an_unshielded_node_is_not_a_critical_section() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    @cancellable
    async def work(state: MessagesState) -> dict[str, Any]:
        entered.set()
        await release.wait()
        return {"messages": [AIMessage("done")]}

    with bind_abort_signal(AbortController().signal) as scope:
        task = asyncio.create_task(chain(work).ainvoke({"messages": [HumanMessage("x")]}))
        await entered.wait()
        assert not scope.in_critical_section
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
