// The OFFICIAL JS agent with steering (@ably/ai-transport 0.8), the reference for
// tests/js/test_interop_steering.py: the README's agent (as tests/js/bench/agent.mjs: one
// Ably.Realtime, a fresh createAgentSession per POST, page the conversation in, start, pipe,
// end or suspend) with the steering loop of its docs:
//
//   while (run.hasInput()) await run.pipe(answer)
//
// It speaks the same POST body as tests/js/steer_agent.py, so the scenarios of
// scenarios_steering.mjs run against either agent:
//
// * holdFor: the invocation's first pass publishes two text deltas (with `tool`: the start of
//   its tool call) and holds until the run's onSteer hint fired that many times, or, with
//   "cancel", until the run is aborted.
// * release: the hold also waits for `POST /test/steer-release {"session"}`.
// * tool: a fresh run's first pass asks the client to run get_location (finish `tool-calls`)
//   and the run suspends; the resume (the client's tool result) answers "You are in Paris.".
//
// A pass other than a fresh run's first names the steers it takes in: the user messages at the
// tail of run.view.getMessages() (the SDK moves unanswered steers there):
// "Took in: <text>; <text>." The agent knows no steer's client id (the SDK gives none).
//
//   node tests/js/steer_agent.mjs '{"ably": <ably-js options>}'
//
// Prints {"port": N} once listening; exits on SIGTERM/SIGINT after closing the Ably client.
import http from 'node:http';
import * as Ably from 'ably';
import { Invocation } from '@ably/ai-transport';
import { createAgentSession, vercelRunOutcome } from '@ably/ai-transport/vercel';

const config = JSON.parse(process.argv[2] ?? '{}');
const ably = new Ably.Realtime({ ...config.ably, clientId: 'js-agent' });
const background = new Set();
// session name -> when the latest session on it has ended: session.end() detaches the
// channel, which this process's one client shares between sessions, so a new session on that
// channel (the resume POST right after a suspend) attaches only once the previous one ended
// (else its attach can fail "Channel detached"). The scenarios run one run at a time per
// session.
const ending = new Map();
const releases = new Map(); // session name -> { promise, resolve }

function releaseOf(session) {
  let entry = releases.get(session);
  if (!entry) {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    entry = { promise, resolve };
    releases.set(session, entry);
  }
  return entry;
}

const untilAborted = (signal) => new Promise((resolve) => {
  if (signal.aborted) resolve();
  else signal.addEventListener('abort', resolve, { once: true });
});

const textOf = (message) => message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');

/** The texts of the user messages at the tail of the run's view: the steers it takes in. */
function steersAtTail(run) {
  const texts = [];
  const messages = run.view.getMessages();
  for (let i = messages.length - 1; i >= 0 && messages[i].message.role === 'user'; i--) texts.unshift(textOf(messages[i].message));
  return texts;
}

const textChunks = (tokens) => [
  { type: 'start' },
  { type: 'start-step' },
  { type: 'text-start', id: 't0' },
  ...tokens.map((delta) => ({ type: 'text-delta', id: 't0', delta })),
  { type: 'text-end', id: 't0' },
  { type: 'finish-step' },
  { type: 'finish', finishReason: 'stop' },
];

const TOOL_REQUEST = [
  { type: 'start' },
  { type: 'start-step' },
  { type: 'tool-input-start', toolCallId: 'call-loc', toolName: 'get_location' },
  { type: 'tool-input-delta', toolCallId: 'call-loc', inputTextDelta: '{}' },
  { type: 'tool-input-available', toolCallId: 'call-loc', toolName: 'get_location', input: {} },
  { type: 'finish-step' },
  { type: 'finish', finishReason: 'tool-calls' },
];
const TEXT_HOLD = 5; // after start, start-step, text-start and two deltas
const TOOL_HOLD = 4; // after start, start-step, tool-input-start and its delta

async function* stream(chunks, holdAt, hold) {
  for (const [index, chunk] of chunks.entries()) {
    if (index === holdAt && hold) await hold();
    yield chunk;
  }
}

async function readJson(req) {
  const parts = [];
  for await (const part of req) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString('utf8'));
}

async function answer(body, res) {
  const invocation = Invocation.fromJSON(body);
  await ending.get(invocation.sessionName);
  let ended;
  ending.set(invocation.sessionName, new Promise((resolve) => { ended = resolve; }));
  const session = createAgentSession({ client: ably, channelName: invocation.sessionName });
  let hints = 0;
  let wake = () => {};
  let run;
  try {
    await session.connect();
    run = session.createRun(invocation, {}, { onSteer: () => { hints += 1; wake(); } });
  } catch (error) {
    await session.end().catch(() => {});
    ended();
    throw error;
  }

  const holdFor = body.holdFor ?? 0;
  const hold = !holdFor ? undefined : async () => {
    if (holdFor === 'cancel') return untilAborted(run.abortSignal);
    while (hints < holdFor && !run.abortSignal.aborted) {
      await Promise.race([new Promise((resolve) => { wake = resolve; }), untilAborted(run.abortSignal)]);
    }
    if (body.release) await Promise.race([releaseOf(invocation.sessionName).promise, untilAborted(run.abortSignal)]);
  };

  const work = (async () => {
    try {
      while (run.view.hasOlder()) await run.view.loadOlder();
      await run.start();
      let pass = 0;
      let result;
      let finishReason = 'stop';
      while (run.hasInput()) {
        pass += 1;
        const freshFirst = pass === 1 && !body.resume;
        const noted = freshFirst ? [] : steersAtTail(run);
        const sentence = noted.length ? [` Took in: ${noted.join('; ')}.`] : [];
        let source;
        if (freshFirst && body.tool) {
          source = stream(TOOL_REQUEST, TOOL_HOLD, hold);
          finishReason = 'tool-calls';
        } else if (pass === 1) {
          source = stream(textChunks([...(body.resume ? ['You are ', 'in ', 'Paris.'] : ['one ', 'two ', 'three.']), ...sentence]), TEXT_HOLD, hold);
          finishReason = 'stop';
        } else {
          source = stream(textChunks([sentence.join('').trimStart()]));
          finishReason = 'stop';
        }
        result = await run.pipe(source);
        if (result.reason !== 'complete' || finishReason === 'tool-calls') break;
      }
      const outcome = result ? await vercelRunOutcome(result, Promise.resolve(finishReason)) : { reason: 'cancelled' };
      if (outcome.reason === 'suspend') await run.suspend();
      else await run.end(outcome);
    } catch (error) {
      process.stderr.write(`js steer agent: run failed: ${error?.stack ?? error}\n`);
    } finally {
      await session.end().catch((error) => process.stderr.write(`js steer agent: session.end: ${error}\n`));
      ended();
    }
  })();
  background.add(work);
  work.finally(() => background.delete(work));

  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ runId: run.runId, invocationId: run.invocationId }));
}

async function handle(req, res) {
  const body = await readJson(req);
  if (req.url === '/test/steer-release') {
    releaseOf(body.session).resolve();
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ released: body.session }));
    return;
  }
  await answer(body, res);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(405).end();
    return;
  }
  handle(req, res).catch((error) => {
    process.stderr.write(`js steer agent: POST failed: ${error?.stack ?? error}\n`);
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { message: String(error?.message ?? error) } }));
  });
});
server.keepAliveTimeout = 60000;

await ably.connection.whenState('connected');
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  server.close();
  server.closeAllConnections();
  const deadline = new Promise((resolve) => setTimeout(resolve, 5000));
  await Promise.race([Promise.allSettled([...background]), deadline]);
  ably.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
