// The OFFICIAL JS agent for bench/network.py: a small Node HTTP server that does what the
// "Agent" section of @ably/ai-transport 0.8.0's README does (node_modules/@ably/ai-transport/
// README.md), with the scripted model of bench/network_agent.py instead of streamText.
//
//   node tests/js/bench/agent.mjs '{"ably": <ably-js options>}'
//
// One Ably.Realtime for the process (the README's module-level client). Per POST, as the
// README: Invocation.fromJSON(body), createAgentSession({client, channelName}),
// `await session.connect()`, session.createRun(invocation), answer {runId, invocationId} at
// once; then in the background: page the conversation in (`run.view.loadOlder()`),
// `run.start()`, `run.pipe(stream)`, vercelRunOutcome, `run.end(outcome)`, `session.end()`.
// The paging is not optional: on the fresh session of a POST, start() finds the triggering
// input only in what was paged in (without it the run never starts). The body's {tokens, intervalMs} pick the script
// (start, start-step, text-start, `tokens` deltas of "tok " with intervalMs between two of
// them, text-end, finish-step, finish), the same as the Python agent's. The sleep between
// deltas stops at the run's abortSignal, as streamText stops at its abortSignal.
//
// Every answer says how long the agent took for it: `Server-Timing: app;dur=<ms>` (from the
// request event to the answer's head), as bench/network_agent.py does.
//
// Prints {"port": N} once listening; exits on SIGTERM/SIGINT after closing the Ably client.
import http from 'node:http';
import * as Ably from 'ably';
import { Invocation } from '@ably/ai-transport';
import { createAgentSession, vercelRunOutcome } from '@ably/ai-transport/vercel';

const config = JSON.parse(process.argv[2] ?? '{}');
const TOKEN = 'tok ';
const ably = new Ably.Realtime({ ...config.ably, clientId: 'js-agent' });
const background = new Set();

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

async function* answer(tokens, intervalMs, signal) {
  yield { type: 'start' };
  yield { type: 'start-step' };
  yield { type: 'text-start', id: 't0' };
  for (let index = 0; index < tokens; index++) {
    if (index && intervalMs) await sleep(intervalMs, signal);
    if (signal.aborted) return;
    yield { type: 'text-delta', id: 't0', delta: TOKEN };
  }
  yield { type: 'text-end', id: 't0' };
  yield { type: 'finish-step' };
  yield { type: 'finish', finishReason: 'stop' };
}

async function readJson(req) {
  const parts = [];
  for await (const part of req) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString('utf8'));
}

async function handle(req, res) {
  const received = performance.now(); // the POST's own time, for Server-Timing
  const body = await readJson(req);
  const invocation = Invocation.fromJSON(body);
  const session = createAgentSession({ client: ably, channelName: invocation.sessionName });
  await session.connect();
  const run = session.createRun(invocation);

  const work = (async () => {
    try {
      // Page in the conversation so far, then open the run on the session.
      while (run.view.hasOlder()) await run.view.loadOlder();
      await run.start();
      const tokens = Math.max(0, Math.min(Number(body.tokens ?? 10), 100000));
      const intervalMs = Math.max(0, Number(body.intervalMs ?? 0));
      const pipeResult = await run.pipe(answer(tokens, intervalMs, run.abortSignal));
      const outcome = await vercelRunOutcome(pipeResult, Promise.resolve('stop'));
      if (outcome.reason === 'suspend') await run.suspend();
      else await run.end(outcome);
    } catch (error) {
      process.stderr.write(`js agent: run failed: ${error?.stack ?? error}\n`);
    } finally {
      await session.end().catch((error) => process.stderr.write(`js agent: session.end: ${error}\n`));
    }
  })();
  background.add(work);
  work.finally(() => background.delete(work));

  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Server-Timing': `app;dur=${(performance.now() - received).toFixed(3)}`,
  });
  res.end(JSON.stringify({ runId: run.runId, invocationId: run.invocationId }));
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(405).end();
    return;
  }
  handle(req, res).catch((error) => {
    process.stderr.write(`js agent: POST failed: ${error?.stack ?? error}\n`);
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
