// The official client as a front end uses it, for the interop scenarios: connecting a
// ClientSession (@ably/ai-transport 0.8, Vercel codec), sending, POSTing the invocation to the
// agent endpoint, waiting on the client's own events, and snapshotting what the view, the
// ClientRun handles and ai@7's Chat (what useChat wraps) show. Scenario files import it and
// end with `await runScenarios(scenarios)`; see tests/js/harness.py for the Python side.
//
// A scenario is `async (channelName) => report` (a JSON-able object). The config comes from
// argv[2]: { ably: <ably-js options without clientId>, agentUrl, prefix, scenarios, timeoutMs? }.
import * as Ably from 'ably';
import { AbstractChat } from 'ai';
import { createChatTransport, createClientSession, createUIMessageCodec } from '@ably/ai-transport/vercel';

export const config = JSON.parse(process.argv[2] ?? '{}');
const TIMEOUT_MS = config.timeoutMs ?? 20000;
export const codec = createUIMessageCodec();
const clients = [];
const sessions = [];

// -- connecting -------------------------------------------------------------------------------

/** A client session on `channelName` over its own realtime connection as `clientId`. */
export async function open(clientId, channelName) {
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
export async function loadHistory(session) {
  while (session.view.hasOlder()) await session.view.loadOlder();
}

/** Publish a user message the way a front end does; returns the ClientRun handle. */
export async function send(session, text) {
  const message = { id: crypto.randomUUID(), role: 'user', parts: [{ type: 'text', text }] };
  return session.view.send([codec.createUserMessage(message)]);
}

/** Wake the agent: POST the run's invocation (plus the scenario) to the endpoint. */
export async function post(run, scenario, extra = {}) {
  const response = await fetch(config.agentUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...run.toInvocation().toJSON(), scenario, ...extra }),
  });
  return { status: response.status, body: await response.json() };
}

// -- observing -----------------------------------------------------------------------------------

export function errorInfo(error) {
  return error ? { code: error.code, statusCode: error.statusCode, message: error.message } : null;
}

/** Resolve with predicate() once truthy, re-checked on every tree/view change. */
export function until(session, predicate, what) {
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
export function withTimeout(promise, what, ms = TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The agent-minted run id, once the agent's ai-run-start for this send arrived. */
export async function started(session, run) {
  await withTimeout(run.started, `run-start of input ${run.inputCodecMessageId}`);
  return run.runId;
}

export const statusOf = (session, runId) => session.view.run(runId)?.status;
export const ended = (session, runId, status) => until(session, () => statusOf(session, runId) === status, `${runId} ${status}`);

export const textOfMessage = (message) =>
  message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');

/** The text of a run's assistant messages, as the view renders them. */
export function textOf(session, runId) {
  return session.view
    .getMessages()
    .filter(({ codecMessageId, message }) => message.role === 'assistant' && session.view.runOf(codecMessageId)?.runId === runId)
    .map(({ message }) => textOfMessage(message))
    .join('');
}

export function snapshot(session) {
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

/** Every tool part of the view, in order, with its message's codec-message-id. */
export function toolParts(session) {
  const parts = [];
  for (const { codecMessageId, message } of session.view.getMessages()) {
    for (const part of message.parts) {
      if (part.type.startsWith('tool-') || part.type === 'dynamic-tool') {
        const { type, toolCallId, state, input, output, errorText } = part;
        parts.push({ codecMessageId, type, toolCallId, state, input, output, errorText });
      }
    }
  }
  return parts;
}

/** Every data part (`data-*`) of the view, in order. */
export const dataParts = (session) =>
  session.view.getMessages().flatMap(({ message }) => message.parts.filter((p) => p.type.startsWith('data-')));

/** The first tool part of the view (with the assistant message's codec-message-id). */
export function toolPart(session) {
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
export function watchToolStates(session) {
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

export const handle = (run) => ({ runId: run.runId, status: run.status, error: errorInfo(run.error) });

// -- useChat without React: ai@7's AbstractChat with a plain state (what @ai-sdk/react's Chat
//    does with React state) --------------------------------------------------------------------

export class NodeChatState {
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

export class NodeChat extends AbstractChat {
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
      error: this.error ? { message: this.error.message, code: this.error.code ?? null, statusCode: this.error.statusCode ?? null } : null,
      messages: this.messages.map((m) => ({ role: m.role, text: textOfMessage(m), parts: m.parts.map((p) => p.type) })),
    };
  }
}

/** A Chat (what useChat wraps) on `session` through the Vercel ChatTransport; records its POSTs. */
export function chatFor(session, scenario, extraBody = {}, chatInit = {}) {
  const posts = [];
  const transport = createChatTransport(session, {
    api: config.agentUrl,
    prepareSendMessagesRequest: (context) => ({
      body: { scenario, trigger: context.trigger, historyLength: context.history.length, ...extraBody },
      headers: { 'X-Chat-Test': scenario },
    }),
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      const post = { url: String(url), method: init.method, status: response.status, body: JSON.parse(init.body), answer: null };
      posts.push(post);
      post.answer = await response.clone().json().catch(() => null); // the endpoint's JSON answer
      return response;
    },
  });
  return { chat: new NodeChat({ ...chatInit, transport }), posts };
}

// -- main -----------------------------------------------------------------------------------------

async function runOne(scenarios, name) {
  const scenario = scenarios[name];
  if (!scenario) return { scenario: name, ok: false, error: `unknown scenario ${name}` };
  try {
    // A scenario awaiting something without its own deadline (say, useChat's sendMessage)
    // must still report a hang rather than keep the process alive.
    const report = await withTimeout(scenario(`${config.prefix}-${name}`), `scenario ${name} to finish`, 3 * TIMEOUT_MS);
    return { scenario: name, ok: true, ...report };
  } catch (error) {
    return { scenario: name, ok: false, error: String(error?.stack ?? error) };
  }
}

/** Run the configured scenarios concurrently, print one JSON line each, then exit. */
export async function runScenarios(scenarios) {
  const names = config.scenarios ?? Object.keys(scenarios);
  await Promise.all(
    names.map(async (name) => {
      process.stdout.write(JSON.stringify(await runOne(scenarios, name)) + '\n');
    }),
  );
  await Promise.allSettled(sessions.map((s) => s.close()));
  for (const client of clients) client.close();
  process.exit(0);
}
