// Multitask strategies seen by the official client: a LangGraph agent (tests/js/graph_agent.py)
// served by create_agent_app(multitask=<strategy>), and a ClientSession that sends a second
// message while its first run sits in a slow tool. Run by tests/js/test_interop_multitask.py,
// once per endpoint (one endpoint per strategy):
//
//   node scenarios_multitask.mjs '<json config>'    (config: see lib/client.mjs, plus strategy)
//
// The graph's scripted model picks its reply from the user's message: 'Start the long job'
// calls long_job (it runs until this script releases it, or the run is cancelled), and
// 'What happened?' answers with what the model was given (the user's earlier requests and
// the jobs' results), so the texts show what each run's model saw.
//
// The core ClientSession does not POST (its send only publishes the input): the front end
// wakes the agent itself (lib/client.mjs's post). useChat's Vercel ChatTransport does POST:
// the chat-* scenarios show how it surfaces the endpoint's answer, and that its
// prepareSendMessagesRequest body can carry a per-input multitaskStrategy.
import {
  chatFor,
  config,
  dataParts,
  ended,
  handle,
  open,
  post,
  runScenarios,
  send,
  snapshot,
  started,
  statusOf,
  textOf,
  until,
  withTimeout,
} from './lib/client.mjs';

const JOB = 'Start the long job';
const ASK = 'What happened?';

/** Send `text` and wake the graph (the front end's own POST); the handle and the answer. */
async function ask(session, text) {
  const run = await send(session, text);
  return { run, http: await post(run, 'multitask') };
}

/** The long job of this session's thread finishes now (graph_agent.py's release route). */
async function release(channel) {
  const response = await fetch(new URL('/test/release', config.agentUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ thread: channel }),
  });
  if (!response.ok) throw new Error(`release answered ${response.status}`);
}

const jobRunning = (session) => dataParts(session).some((p) => p.type === 'data-job-progress');

/** Every run start and end in the order the client's tree applied them: [type, runId]. */
function watchRuns(session) {
  const seen = [];
  session.tree.on('run', (event) => {
    if (event.type === 'start' || event.type === 'end') seen.push([event.type, event.runId]);
  });
  return seen;
}

/** What the client does once the second input's POST is answered, until both runs ended;
 *  by the endpoint's strategy. */
const AFTER_SECOND_POST = {
  // Both are active at once: the second starts while the first still sits in its tool;
  // its graph waits for the thread (run_graph runs one run of a thread at a time), so it
  // completes once the job's run has.
  async concurrent({ session, channel, first, second, notes }) {
    const secondRunId = await started(session, second);
    notes.firstWhenSecondStarted = statusOf(session, first.runId);
    notes.secondWhenStarted = statusOf(session, secondRunId);
    await release(channel);
    await ended(session, first.runId, 'complete');
    await ended(session, secondRunId, 'complete');
  },
  // The first is cancelled by the new input, then the second runs.
  async interrupt({ session, first, second }) {
    await ended(session, first.runId, 'cancelled');
    await ended(session, await started(session, second), 'complete');
  },
  async rollback(context) {
    await AFTER_SECOND_POST.interrupt(context);
  },
  // The second waits (answered 200 at once); the first finishes, then the second runs.
  async enqueue({ session, channel, first, second }) {
    await release(channel);
    await ended(session, first.runId, 'complete');
    await ended(session, await started(session, second), 'complete');
  },
  // The second is refused: it starts and ends `error` on the wire; the first goes on.
  async reject({ session, channel, first, second }) {
    await ended(session, await started(session, second), 'error');
    await release(channel);
    await ended(session, first.runId, 'complete');
  },
};

/** The run a user message of the view started, by its text. */
const runOfText = (session, text) =>
  snapshot(session).messages.find((m) => m.role === 'user' && m.text === text)?.runId;

/** useChat (ai@7's Chat, lib/client.mjs's chatFor) through the Vercel ChatTransport, which
 *  POSTs itself: chat A sends the long job; while it streams, chat B (a second useChat on the
 *  same ClientSession, a chat cannot send while it streams) sends 'What happened?' with
 *  `secondBody` merged into its POST body (prepareSendMessagesRequest). */
async function chatSecondInput(channel, secondBody) {
  const { session, errors } = await open('user-1', channel);
  const order = watchRuns(session);
  const a = chatFor(session, 'multitask');
  const b = chatFor(session, 'multitask', secondBody);
  const aDone = a.chat.sendMessage({ text: JOB });
  // Chat A shows the job running (its stream consumed so far, not only the session's view).
  await a.chat.until(() => a.chat.messages.at(-1)?.parts.some((p) => p.type === 'data-job-progress'), 'chat A showing the long job');
  await withTimeout(b.chat.sendMessage({ text: ASK }), 'chat B to finish its turn');
  const secondRunId = await until(session, () => runOfText(session, ASK), 'the second run');
  const firstRunId = runOfText(session, JOB);
  return { session, errors, order, a, b, aDone, firstRunId, secondRunId };
}

async function chatReport({ session, errors, order, a, b, aDone, firstRunId, secondRunId }) {
  await withTimeout(aDone, 'chat A to finish its turn');
  return {
    runIds: [firstRunId, secondRunId],
    chats: { a: a.chat.report(), b: b.chat.report() },
    posts: [...a.posts, ...b.posts].map(({ status, body, answer }) => ({ status, strategy: body.multitaskStrategy ?? null, answer })),
    texts: { first: textOf(session, firstRunId), second: textOf(session, secondRunId) },
    order,
    view: snapshot(session),
    errors,
  };
}

const scenarios = {
  // One turn, then the long job; while it runs the same ClientSession sends 'What happened?'
  // and POSTs it; then a last 'What happened?' once both runs ended (the strict model checks
  // the thread is valid, and its answer shows what the thread holds).
  async 'second-input'(channel) {
    const { session, errors } = await open('user-1', channel);
    const order = watchRuns(session);
    const hello = await ask(session, 'hi');
    await ended(session, await started(session, hello.run), 'complete');
    const first = await ask(session, JOB);
    await started(session, first.run);
    await until(session, () => jobRunning(session), 'the long job running');
    const second = await ask(session, ASK);
    const notes = { atSecondAnswer: { first: handle(first.run), second: handle(second.run) } };
    await AFTER_SECOND_POST[config.strategy]({ session, channel, first: first.run, second: second.run, notes });
    const last = await ask(session, ASK);
    await ended(session, await started(session, last.run), 'complete');
    return {
      runIds: [hello.run.runId, first.run.runId, second.run.runId, last.run.runId],
      http: [hello.http, first.http, second.http, last.http],
      handles: { first: handle(first.run), second: handle(second.run) },
      texts: { first: textOf(session, first.run.runId), second: textOf(session, second.run.runId), last: textOf(session, last.run.runId) },
      order,
      notes,
      view: snapshot(session),
      errors,
    };
  },

  // The endpoint's strategy is reject: chat B's POST is refused.
  async 'chat-reject'(channel) {
    const run = await chatSecondInput(channel, {});
    await ended(run.session, run.secondRunId, 'error');
    await release(channel);
    await ended(run.session, run.firstRunId, 'complete');
    return chatReport(run);
  },

  // The endpoint's strategy is reject, but chat B's POST asks for interrupt, an override the
  // endpoint allows: chat A's run is cancelled, chat B's runs.
  async 'chat-override'(channel) {
    const run = await chatSecondInput(channel, { multitaskStrategy: 'interrupt' });
    await ended(run.session, run.firstRunId, 'cancelled');
    await ended(run.session, run.secondRunId, 'complete');
    return chatReport(run);
  },
};

await runScenarios(scenarios);
