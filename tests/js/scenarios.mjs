// Interop scenarios: the official client (@ably/ai-transport 0.8, its Vercel ChatTransport
// and ai@7's Chat, which useChat wraps) against the Python agent endpoint, through the
// offline Ably broker. Run by tests/js/test_interop.py:
//
//   node scenarios.mjs '<json config>'
//
// config: { ably: <ably-js client options without clientId>, agentUrl, prefix,
//           scenarios: [names], timeoutMs? }
// Each scenario runs on its own session channel `<prefix>-<name>`, all concurrently. Output:
// one JSON line per scenario, `{"scenario", "ok": true, ...report}` or
// `{"scenario", "ok": false, "error"}`. The report is what a front end sees: the view's
// messages and runs, the ClientRun handles, errors, useChat's state. Waiting is on client
// events only; the timeout exists to report a hang, never to pace a scenario.
import * as Ably from 'ably';
import { AbstractChat } from 'ai';
import { createChatTransport, createClientSession, createUIMessageCodec } from '@ably/ai-transport/vercel';

const config = JSON.parse(process.argv[2] ?? '{}');
const TIMEOUT_MS = config.timeoutMs ?? 20000;
const codec = createUIMessageCodec();
const clients = [];
const sessions = [];

// -- connecting -------------------------------------------------------------------------------

/** A client session on `channelName` over its own realtime connection as `clientId`. */
async function open(clientId, channelName) {
  const client = new Ably.Realtime({ ...config.ably, clientId });
  clients.push(client);
  const session = createClientSession({ client, channelName });
  sessions.push(session);
  const errors = [];
  session.on('error', (error) => errors.push(errorInfo(error)));
  await session.connect();
  return { session, errors, client };
}

/** A late joiner pages the conversation so far into its view (as a front end's view does). */
async function loadHistory(session) {
  while (session.view.hasOlder()) await session.view.loadOlder();
}

/** Publish a user message the way a front end does; returns the ClientRun handle. */
async function send(session, text) {
  const message = { id: crypto.randomUUID(), role: 'user', parts: [{ type: 'text', text }] };
  return session.view.send([codec.createUserMessage(message)]);
}

/** Wake the agent: POST the run's invocation (plus the scenario) to the endpoint. */
async function post(run, scenario, extra = {}) {
  const response = await fetch(config.agentUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...run.toInvocation().toJSON(), scenario, ...extra }),
  });
  return { status: response.status, body: await response.json() };
}

// -- observing -----------------------------------------------------------------------------------

function errorInfo(error) {
  return error ? { code: error.code, statusCode: error.statusCode, message: error.message } : null;
}

/** Resolve with predicate() once truthy, re-checked on every tree/view change. */
function until(session, predicate, what) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const finish = () => {
      clearTimeout(timer);
      for (const off of offs) off();
    };
    const check = () => {
      let value;
      try {
        value = predicate();
      } catch (error) {
        finish();
        reject(error);
        return;
      }
      if (value) {
        finish();
        resolve(value);
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out waiting for ${what}; view: ${JSON.stringify(snapshot(session))}`));
    }, TIMEOUT_MS);
    offs.push(session.tree.on('update', check), session.tree.on('run', check), session.view.on('update', check));
    check();
  });
}

/** Reject if `promise` has not settled in time (reports a hang; never paces anything). */
function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The agent-minted run id, once the agent's ai-run-start for this send arrived. */
async function started(session, run) {
  await withTimeout(run.started, `run-start of input ${run.inputCodecMessageId}`);
  return run.runId;
}

const statusOf = (session, runId) => session.view.run(runId)?.status;
const ended = (session, runId, status) => until(session, () => statusOf(session, runId) === status, `${runId} ${status}`);

const textOfMessage = (message) =>
  message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');

/** The text of a run's assistant messages, as the view renders them. */
function textOf(session, runId) {
  return session.view
    .getMessages()
    .filter(({ codecMessageId, message }) => message.role === 'assistant' && session.view.runOf(codecMessageId)?.runId === runId)
    .map(({ message }) => textOfMessage(message))
    .join('');
}

function snapshot(session) {
  return {
    messages: session.view.getMessages().map(({ codecMessageId, message }) => ({
      codecMessageId,
      role: message.role,
      runId: session.view.runOf(codecMessageId)?.runId ?? null,
      text: textOfMessage(message),
      parts: message.parts.map((p) => p.type),
    })),
    runs: session.view.runs().map((r) => ({
      runId: r.runId,
      status: r.status,
      clientId: r.clientId,
      invocationId: r.invocationId,
      error: errorInfo(r.error),
    })),
  };
}

/** The first tool part of the view (with the assistant message's codec-message-id). */
function toolPart(session) {
  for (const { codecMessageId, message } of session.view.getMessages()) {
    const part = message.parts.find((p) => p.type.startsWith('tool-') || p.type === 'dynamic-tool');
    if (part) {
      const { type, toolCallId, state, input, output, errorText } = part;
      return { codecMessageId, type, toolCallId, state, input, output, errorText };
    }
  }
  return undefined;
}

/** Record each distinct (state, input) of the first tool part as the view goes through it. */
function watchToolStates(session) {
  const states = [];
  const record = () => {
    const part = toolPart(session);
    if (!part) return;
    const seen = { state: part.state, input: part.input ?? null };
    if (JSON.stringify(states.at(-1)) !== JSON.stringify(seen)) states.push(seen);
  };
  session.tree.on('output', record);
  session.view.on('update', record);
  return states;
}

const handle = (run) => ({ runId: run.runId, status: run.status, error: errorInfo(run.error) });

// -- useChat without React: ai@7's AbstractChat with a plain state (what @ai-sdk/react's Chat
//    does with React state) --------------------------------------------------------------------

class NodeChatState {
  #messages = [];
  #status = 'ready';
  #error = undefined;
  #listeners = new Set();

  get messages() { return this.#messages; }
  set messages(value) { this.#messages = value; this.#changed(); }
  get status() { return this.#status; }
  set status(value) { this.#status = value; this.#changed(); }
  get error() { return this.#error; }
  set error(value) { this.#error = value; this.#changed(); }
  pushMessage = (message) => { this.messages = [...this.#messages, message]; };
  popMessage = () => { this.messages = this.#messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    const next = [...this.#messages];
    next[index] = this.snapshot(message);
    this.messages = next;
  };
  snapshot = (thing) => structuredClone(thing);
  onChange(listener) { this.#listeners.add(listener); return () => this.#listeners.delete(listener); }
  #changed() { for (const listener of this.#listeners) listener(); }
}

class NodeChat extends AbstractChat {
  constructor(init) {
    const state = new NodeChatState();
    super({ ...init, state });
    this.chatState = state;
  }

  until(predicate, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new Error(`timed out waiting for ${what}; chat: ${JSON.stringify(this.report())}`)); }, TIMEOUT_MS);
      const check = () => { if (predicate()) { clearTimeout(timer); off(); resolve(); } };
      const off = this.chatState.onChange(check);
      check();
    });
  }

  report() {
    return {
      status: this.status,
      error: this.error ? { message: this.error.message, code: this.error.code ?? null } : null,
      messages: this.messages.map((m) => ({ role: m.role, text: textOfMessage(m), parts: m.parts.map((p) => p.type) })),
    };
  }
}

function chatFor(session, scenario, extraBody = {}) {
  const posts = [];
  const transport = createChatTransport(session, {
    api: config.agentUrl,
    prepareSendMessagesRequest: (context) => ({
      body: { scenario, trigger: context.trigger, historyLength: context.history.length, ...extraBody },
      headers: { 'X-Chat-Test': scenario },
    }),
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      posts.push({ url: String(url), method: init.method, status: response.status, body: JSON.parse(init.body) });
      return response;
    },
  });
  return { chat: new NodeChat({ transport }), posts };
}

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
  // core API's continuation) and POSTs it; the same run resumes and answers.
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
    return {
      runId,
      asked,
      continuationRunId: continuation.runId,
      http,
      tool: toolPart(session),
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

// -- main -----------------------------------------------------------------------------------------

async function runOne(name) {
  const scenario = scenarios[name];
  if (!scenario) return { scenario: name, ok: false, error: `unknown scenario ${name}` };
  try {
    const report = await scenario(`${config.prefix}-${name}`);
    return { scenario: name, ok: true, ...report };
  } catch (error) {
    return { scenario: name, ok: false, error: String(error?.stack ?? error) };
  }
}

const names = config.scenarios ?? Object.keys(scenarios);
await Promise.all(
  names.map(async (name) => {
    process.stdout.write(JSON.stringify(await runOne(name)) + '\n');
  }),
);
await Promise.allSettled(sessions.map((s) => s.close()));
for (const client of clients) client.close();
process.exit(0);
