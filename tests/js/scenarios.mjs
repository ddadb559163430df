// Interop scenarios with the scripted agent (tests/js/scenario_agent.py): the official client
// (@ably/ai-transport 0.8, its Vercel ChatTransport and ai@7's Chat, which useChat wraps)
// against the Python agent endpoint, through the offline Ably broker. Run by
// tests/js/test_interop.py:
//
//   node scenarios.mjs '<json config>'        (config: see lib/client.mjs)
//
// Each scenario runs on its own session channel `<prefix>-<name>`, all concurrently, and
// prints one JSON line: `{"scenario", "ok": true, ...report}` or `{"scenario", "ok": false,
// "error"}`. The POST body's `scenario` field picks the agent's behaviour. Waiting is on
// client events only; the timeout exists to report a hang, never to pace a scenario.
import {
  chatFor,
  codec,
  config,
  ended,
  handle,
  loadHistory,
  open,
  post,
  runScenarios,
  send,
  snapshot,
  started,
  statusOf,
  textOf,
  textOfMessage,
  toolPart,
  until,
  watchToolStates,
  withTimeout,
} from './lib/client.mjs';

// -- scenarios ----------------------------------------------------------------------------------

const scenarios = {
  // Send and stream a text answer.
  async text(channel) {
    const { session, errors } = await open('user-1', channel);
    const run = await send(session, 'hi');
    const http = await post(run, 'text');
    const runId = await started(session, run);
    await ended(session, runId, 'complete');
    return { http, runId, handle: handle(run), text: textOf(session, runId), view: snapshot(session), errors };
  },

  // Stop mid-stream with session.cancel(runId) (the README's Stop button).
  async 'stop-by-run-id'(channel) {
    const { session, errors } = await open('user-1', channel);
    const run = await send(session, 'tell me a story');
    await post(run, 'hold');
    const runId = await started(session, run);
    await until(session, () => textOf(session, runId) === 'one two ', 'two tokens');
    await session.cancel(runId);
    await ended(session, runId, 'cancelled');
    return { runId, handle: handle(run), text: textOf(session, runId), view: snapshot(session), errors };
  },

  // Stop with the send handle's cancel() before the agent started the run (keyed by the
  // input's codec-message-id), published before the POST wakes the agent.
  async 'stop-before-start'(channel) {
    const { session, errors } = await open('user-1', channel);
    const run = await send(session, 'never mind');
    await run.cancel();
    const http = await post(run, 'hold');
    const runId = await started(session, run);
    await ended(session, runId, 'cancelled');
    return { http, runId, handle: handle(run), view: snapshot(session), errors };
  },

  // Tokens published after the client pressed Stop (before the agent honoured it) belong to
  // the cancelled run.
  async 'tail-after-cancel'(channel) {
    const { session, errors } = await open('user-1', channel);
    const run = await send(session, 'go on');
    await post(run, 'tail');
    const runId = await started(session, run);
    await until(session, () => textOf(session, runId) === 'one two ', 'two tokens');
    const atCancel = textOf(session, runId);
    await session.cancel(runId);
    await ended(session, runId, 'cancelled');
    return { runId, atCancel, text: textOf(session, runId), view: snapshot(session), errors };
  },

  // Cancel, then send again on the same session: the next run starts clean.
  async 'cancel-then-send'(channel) {
    const { session, errors } = await open('user-1', channel);
    const first = await send(session, 'first');
    await post(first, 'hold');
    const a = await started(session, first);
    await until(session, () => textOf(session, a) === 'one two ', 'two tokens of the first run');
    await session.cancel(a);
    await ended(session, a, 'cancelled');
    const second = await send(session, 'second');
    await post(second, 'text');
    const b = await started(session, second);
    await ended(session, b, 'complete');
    return {
      first: { runId: a, status: statusOf(session, a), text: textOf(session, a) },
      second: { runId: b, status: statusOf(session, b), text: textOf(session, b) },
      view: snapshot(session),
      errors,
    };
  },

  // Two concurrent runs on one session: cancel one, the other streams on to the end.
  async 'send-alongside'(channel) {
    const { session, errors } = await open('user-1', channel);
    const first = await send(session, 'first');
    await post(first, 'alongside');
    const a = await started(session, first);
    await until(session, () => textOf(session, a) === 'one two ', 'two tokens of A');
    const second = await send(session, 'second, alongside');
    await post(second, 'alongside');
    const b = await started(session, second);
    await until(session, () => textOf(session, b) === 'one two ', 'two tokens of B');
    const bothActive = [statusOf(session, a), statusOf(session, b)];
    await session.cancel(a);
    await ended(session, a, 'cancelled');
    await ended(session, b, 'complete');
    return {
      bothActive,
      a: { runId: a, status: statusOf(session, a), text: textOf(session, a) },
      b: { runId: b, status: statusOf(session, b), text: textOf(session, b) },
      view: snapshot(session),
      errors,
    };
  },

  // A second connection of the same user (another device) finds the active run in its own
  // view and stops it.
  async 'cancel-from-second-device'(channel) {
    const phone = await open('user-1', channel);
    const run = await send(phone.session, 'long answer please');
    await post(run, 'hold');
    const runId = await started(phone.session, run);
    await until(phone.session, () => textOf(phone.session, runId) === 'one two ', 'two tokens');
    const laptop = await open('user-1', channel);
    await loadHistory(laptop.session);
    const seen = await until(laptop.session, () => laptop.session.view.runs().find((r) => r.status === 'active'), 'the active run on the second device');
    await laptop.session.cancel(seen.runId);
    await ended(phone.session, runId, 'cancelled');
    await ended(laptop.session, runId, 'cancelled');
    return {
      runId,
      seenRunId: seen.runId,
      connections: [phone.client.connection.id, laptop.client.connection.id],
      phone: { view: snapshot(phone.session), errors: phone.errors },
      laptop: { view: snapshot(laptop.session), errors: laptop.errors },
    };
  },

  // The agent's on_cancel hook rejects a cancel from someone else: the run keeps streaming.
  async 'on-cancel-rejected'(channel) {
    const owner = await open('user-1', channel);
    const run = await send(owner.session, 'mine');
    await post(run, 'owner-only');
    const runId = await started(owner.session, run);
    await until(owner.session, () => textOf(owner.session, runId) === 'one two ', 'two tokens');
    const intruder = await open('intruder', channel);
    await loadHistory(intruder.session);
    await until(intruder.session, () => statusOf(intruder.session, runId) === 'active', 'the run, seen by the intruder');
    await intruder.session.cancel(runId);
    await ended(owner.session, runId, 'complete');
    return { runId, text: textOf(owner.session, runId), handle: handle(run), view: snapshot(owner.session), errors: owner.errors };
  },

  // A Python ClientSession on the channel (test_interop.py's python_cancels) stops the run this
  // client started, with a reason: its ai-cancel carries this package's x-cancel-* headers,
  // unknown to the official client, which folds it and the run's end, then sends again.
  async 'cancelled-by-python'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const cancels = [];
    await client.channels.get(channel).subscribe('ai-cancel', (m) => cancels.push({ clientId: m.clientId, headers: m.extras?.ai?.transport }));
    const run = await send(session, 'tell me a story');
    await post(run, 'hold');
    const runId = await started(session, run);
    await until(session, () => textOf(session, runId) === 'one two ', 'two tokens');
    await ended(session, runId, 'cancelled'); // the Python client cancels it
    const view = snapshot(session);
    const next = await send(session, 'still there?');
    await post(next, 'text');
    const nextId = await started(session, next);
    await ended(session, nextId, 'complete');
    return { runId, handle: handle(run), view, cancels, next: { runId: nextId, text: textOf(session, nextId) }, errors };
  },

  // The same with useChat showing the run: the remote cancel ends its stream, no error.
  async 'chat-cancelled-by-python'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { chat } = chatFor(session, 'hold');
    const sending = chat.sendMessage({ text: 'a long one' });
    await chat.until(() => chat.messages.at(-1)?.role === 'assistant' && textOfMessage(chat.messages.at(-1)) === 'one two ', 'two tokens in useChat');
    await withTimeout(sending, "useChat's stream to close"); // the Python client cancels the run
    const runId = await until(session, () => session.view.runs().find((r) => r.status === 'cancelled')?.runId, 'the run cancelled');
    await chat.until(() => chat.status === 'ready', 'useChat ready');
    return { runId, chat: chat.report(), view: snapshot(session), errors };
  },

  // A server tool call: its input streams into the tool part, then its output arrives, then
  // the answer of the second step.
  async 'tool-call'(channel) {
    const { session, errors } = await open('user-1', channel);
    const states = watchToolStates(session);
    const run = await send(session, 'weather in Paris?');
    await post(run, 'tool-call');
    const runId = await started(session, run);
    await ended(session, runId, 'complete');
    return { runId, states, tool: toolPart(session), text: textOf(session, runId), view: snapshot(session), errors };
  },

  // A client tool: the run suspends; the client sends the tool result naming the run (the
  // core API's continuation) and POSTs it; the same run resumes and answers. The part keeps
  // the client's object, live and for a late joiner folding the channel's history.
  async 'client-tool'(channel) {
    const { session, errors } = await open('user-1', channel);
    const run = await send(session, 'where am I?');
    await post(run, 'client-tool');
    const runId = await started(session, run);
    await until(session, () => statusOf(session, runId) === 'suspended', 'the run suspended');
    const asked = toolPart(session);
    const result = codec.createToolResult(asked.codecMessageId, { toolCallId: asked.toolCallId, output: { city: 'Paris' } });
    const continuation = await session.view.send([result], { runId });
    const http = await post(continuation, 'client-tool');
    await started(session, continuation);
    await ended(session, runId, 'complete');
    const later = await open('user-2', channel);
    await loadHistory(later.session);
    await ended(later.session, runId, 'complete');
    return {
      runId,
      asked,
      continuationRunId: continuation.runId,
      http,
      tool: toolPart(session),
      lateJoinerTool: toolPart(later.session),
      text: textOf(session, runId),
      view: snapshot(session),
      errors,
    };
  },

  // The model fails mid-answer: the run ends `error` with code and message.
  async 'agent-error'(channel) {
    const { session, errors } = await open('user-1', channel);
    const run = await send(session, 'break');
    await post(run, 'error');
    const runId = await started(session, run);
    await ended(session, runId, 'error');
    await until(session, () => errors.length > 0, 'the session error event');
    return { runId, text: textOf(session, runId), handle: handle(run), view: snapshot(session), errors };
  },

  // The agent code itself raises: the endpoint ends the run `error`.
  async 'agent-raises'(channel) {
    const { session, errors } = await open('user-1', channel);
    const run = await send(session, 'crash');
    await post(run, 'raise');
    const runId = await started(session, run);
    await ended(session, runId, 'error');
    return { runId, handle: handle(run), view: snapshot(session), errors };
  },

  // useChat through the Vercel ChatTransport: it POSTs to the endpoint and streams the answer.
  async 'chat-transport'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { chat, posts } = chatFor(session, 'text');
    await chat.sendMessage({ text: 'hi' });
    await chat.until(() => chat.status === 'ready', 'useChat ready');
    // useChat's stream closes on the `finish` chunk; the run's end follows on the channel.
    const runId = await until(session, () => session.view.runs().find((r) => r.status === 'complete')?.runId, 'the run complete');
    return { runId, chat: chat.report(), posts, view: snapshot(session), errors };
  },

  // useChat's stop() (its Stop button): the transport cancels the run it started.
  async 'chat-stop'(channel) {
    const { session, errors } = await open('user-1', channel);
    const { chat, posts } = chatFor(session, 'hold');
    const sending = chat.sendMessage({ text: 'a long one' });
    await chat.until(() => chat.messages.at(-1)?.role === 'assistant' && textOfMessage(chat.messages.at(-1)) === 'one two ', 'two tokens in useChat');
    await chat.stop();
    await sending;
    const runId = await until(session, () => session.view.runs().find((r) => r.status === 'cancelled')?.runId, 'the run cancelled');
    await chat.until(() => chat.status === 'ready', 'useChat ready');
    return { runId, chat: chat.report(), posts, view: snapshot(session), errors };
  },

  // The endpoint refuses the session (404): useChat shows the POST's failure.
  async 'chat-unknown-session'() {
    const { session, errors } = await open('user-1', `forbidden:${config.prefix}`);
    const { chat, posts } = chatFor(session, 'text');
    await chat.sendMessage({ text: 'hi' });
    await chat.until(() => chat.status === 'error', 'useChat error');
    return { chat: chat.report(), posts, errors };
  },
};

await runScenarios(scenarios);
