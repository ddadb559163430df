// Interop scenarios with a LangGraph agent (tests/js/graph_agent.py, run by run_graph behind
// create_agent_app): the official client against tool calls, Stop while tools run, and a
// human-in-the-loop interrupt and its continuation. Run by tests/js/test_interop_langgraph.py:
//
//   node scenarios_langgraph.mjs '<json config>'        (config: see lib/client.mjs)
//
// The graph's scripted model picks its reply from the user's message, so each scenario's
// message is its script. Output: one JSON line per scenario (see lib/client.mjs).
import { lastAssistantMessageIsCompleteWithToolCalls } from 'ai';

import {
  chatFor,
  codec,
  dataParts,
  ended,
  loadHistory,
  open,
  post,
  runScenarios,
  send,
  snapshot,
  started,
  statusOf,
  textOf,
  toolParts,
  textOfMessage,
  until,
  watchToolStates,
  withTimeout,
} from './lib/client.mjs';

/** What the client answers the graph's interrupt() with: an object, kept as sent. */
const ANSWER = { time: '8pm', seats: 2 };

/** Tool call id -> { state, output } of its part (no `output` key when the part has none). */
const outputsOf = (session) => Object.fromEntries(toolParts(session).map((p) => [p.toolCallId, { state: p.state, output: p.output }]));

/** Send `text`, wake the graph, and return the agent-minted run id once it started. */
async function ask(session, text) {
  const run = await send(session, text);
  const http = await post(run, 'graph');
  return { run, http, runId: await started(session, run) };
}

const scenarios = {
  // A plain answer streamed from the graph's model.
  async 'graph-text'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { runId, http } = await ask(session, 'hi');
    await ended(session, runId, 'complete');
    return { runId, http, text: textOf(session, runId), view: snapshot(session), errors };
  },

  // A server tool call: its input streams into the tool part, then its output, then text.
  async 'graph-tool-call'(channel) {
    const { session, errors } = await open('user-1', channel);
    const states = watchToolStates(session);
    const { runId } = await ask(session, 'What is the weather in Paris?');
    await ended(session, runId, 'complete');
    return { runId, states, tools: toolParts(session), text: textOf(session, runId), view: snapshot(session), errors };
  },

  // Server tools returning a list, a number, a bool, None, a pydantic model, JSON-looking text
  // and content blocks: each part's output as the view holds it, live and for a late joiner.
  async 'graph-tool-values'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { runId } = await ask(session, 'Show me the values');
    await ended(session, runId, 'complete');
    const later = await open('user-2', channel);
    await loadHistory(later.session);
    return {
      runId,
      outputs: outputsOf(session),
      lateJoiner: outputsOf(later.session),
      text: textOf(session, runId),
      errors,
    };
  },

  // Stop while a tool runs (a second call still pending), then ask again on the same thread.
  async 'graph-stop-while-tools'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { runId } = await ask(session, 'Crawl the docs and email me a report');
    await until(session, () => dataParts(session).some((p) => p.type === 'data-crawl-progress'), 'the crawl running');
    const atStop = toolParts(session);
    await session.cancel(runId);
    await ended(session, runId, 'cancelled');
    const afterStop = toolParts(session);
    const next = await ask(session, 'What did you do?');
    await ended(session, next.runId, 'complete');
    return {
      runId,
      atStop,
      afterStop,
      text: textOf(session, runId),
      next: { runId: next.runId, status: statusOf(session, next.runId), text: textOf(session, next.runId) },
      view: snapshot(session),
      errors,
    };
  },

  // Human in the loop: interrupt() suspends the run; the client's answer (a tool result naming
  // the run, an object) resumes it under the same run id. The part must keep that object, in
  // this view and in a late joiner's (which folds the channel's history).
  async 'graph-hitl'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { runId } = await ask(session, 'Book a table for two');
    await until(session, () => statusOf(session, runId) === 'suspended', 'the run suspended');
    const [question] = toolParts(session);
    const answer = codec.createToolResult(question.codecMessageId, { toolCallId: question.toolCallId, output: ANSWER });
    const continuation = await session.view.send([answer], { runId });
    const http = await post(continuation, 'graph');
    await started(session, continuation);
    await ended(session, runId, 'complete');
    const later = await open('user-2', channel);
    await loadHistory(later.session);
    await until(later.session, () => statusOf(later.session, runId) === 'complete', 'the run, seen by a late joiner');
    return {
      runId,
      question,
      continuationRunId: continuation.runId,
      http,
      tools: toolParts(session),
      lateJoinerTools: toolParts(later.session),
      text: textOf(session, runId),
      view: snapshot(session),
      errors,
    };
  },

  // The same through useChat: the question shows as a tool part; addToolOutput answers it and
  // useChat sends the continuation itself (the ChatTransport publishes the result as a fork).
  async 'graph-chat-hitl'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { chat, posts } = chatFor(session, 'graph', {}, { sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls });
    // useChat's stream closes on a finish chunk (finishReason 'tool-calls' for a suspend).
    await withTimeout(chat.sendMessage({ text: 'Book a table for two' }), 'useChat to close the turn', 5000).catch((error) => {
      throw new Error(`${error.message}; chat: ${JSON.stringify(chat.report())}; view: ${JSON.stringify(snapshot(session))}`);
    });
    const asking = () => chat.messages.at(-1)?.parts.find((p) => p.type === 'tool-ask_user');
    await chat.until(() => chat.status === 'ready' && asking()?.state === 'input-available', 'the question in useChat');
    const question = { state: asking().state, input: asking().input };
    await chat.addToolOutput({ tool: 'ask_user', toolCallId: asking().toolCallId, output: ANSWER });
    await chat.until(() => chat.status === 'ready' && textOfMessage(chat.messages.at(-1)) === 'Booked a table for 8pm.', 'the answer in useChat');
    await until(session, () => session.view.runs().some((r) => r.status === 'complete'), 'a run complete');
    const answered = chat.messages.flatMap((m) => m.parts).filter((p) => p.type === 'tool-ask_user');
    return {
      question,
      chatTools: answered.map(({ state, output }) => ({ state, output })),
      tools: toolParts(session),
      chat: chat.report(),
      posts,
      view: snapshot(session),
      errors,
    };
  },
};

await runScenarios(scenarios);
