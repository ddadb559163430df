// Steering a LangGraph agent with the official client (@ably/ai-transport 0.8, ClientRun.steer):
// tests/js/graph_agent.py's graph served by create_agent_app (run_graph). Run by
// tests/js/test_interop_graph_steering.py:
//
//   node scenarios_graph_steering.mjs '<json config>'    (config: see lib/client.mjs)
//
// The graph's scripted model picks its reply from the user's message: 'Start the long job'
// calls long_job, which runs until this script releases it (POST /test/release) or the run
// is cancelled; 'Tell me a story' streams a story that holds after 'Once upon' until the
// release. A release naming `steers` waits until the agent's run received that many steers,
// so the steer is in the run before the job (or the story) goes on: no race, no sleep.
// 'What happened?' answers with the user's requests and the jobs' results the model was
// given (the thread afterwards). Each scenario reports the steer's promises as the SDK
// resolved them, the view, and every message its connection received.
import {
  config,
  dataParts,
  ended,
  open,
  post,
  runScenarios,
  send,
  snapshot,
  started,
  textOf,
  until,
} from './lib/client.mjs';
import { steer, tap } from './lib/steering.mjs';

const JOB = 'Start the long job';
const ASK = 'What happened?';

/** Send `text` and wake the graph; the handle and its run id once started. */
async function ask(session, text) {
  const run = await send(session, text);
  const http = await post(run, 'graph-steering');
  return { run, http, runId: await started(session, run) };
}

/** The thread's long job (or held story) goes on, once its run received `steers` steers. */
async function release(channel, steers = 0) {
  const response = await fetch(new URL('/test/release', config.agentUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ thread: channel, steers }),
  });
  if (!response.ok) throw new Error(`release answered ${response.status}`);
  return response.json();
}

const jobRunning = (session) => dataParts(session).some((p) => p.type === 'data-job-progress');

/** Start the long job and wait until the client sees it running. */
async function startJob(session) {
  const job = await ask(session, JOB);
  await until(session, () => jobRunning(session), 'the long job running');
  return job;
}

/** A last turn on the thread: the model's account of what it holds. */
async function whatHappened(session) {
  const next = await ask(session, ASK);
  await ended(session, next.runId, 'complete');
  return { runId: next.runId, text: textOf(session, next.runId) };
}

const scenarios = {
  // A steer while the long tool runs: the graph takes it in at the step boundary after the
  // tool, so the next model call (the last one) sees it.
  async 'graph-steer-during-tool'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const { run, http, runId } = await startJob(session);
    const s = steer(run, 'also report the weather');
    await s.published();
    const pending = { settled: s.state.settled, view: snapshot(session) };
    const released = await release(channel, 1);
    await s.outcome();
    await ended(session, runId, 'complete');
    return { http, runId, released, steer: s.state, pending, text: textOf(session, runId), view: snapshot(session), wire, errors };
  },

  // A steer the agent has (it is in the run) when the client's cancel arrives.
  async 'graph-steer-then-cancel'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const { run, runId } = await startJob(session);
    const s = steer(run, 'also report the weather');
    await s.published();
    await session.cancel(runId);
    await s.outcome();
    await ended(session, runId, 'cancelled');
    const view = snapshot(session);
    return { runId, steer: s.state, view, wire, next: await whatHappened(session), errors };
  },

  // A steer published right after the client's cancel, before the run's end came back.
  async 'graph-steer-after-cancel'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const { run, runId } = await startJob(session);
    await session.cancel(runId);
    const s = steer(run, 'also report the weather');
    await s.outcome();
    await ended(session, runId, 'cancelled');
    // The run's end may come back before the steer's own echo: wait for it on the wire.
    await wire.until((m) => m.name === 'ai-input' && m.runId === runId, 'the steer on the wire');
    const view = snapshot(session);
    return { runId, steer: s.state, view, wire, next: await whatHappened(session), errors };
  },

  // A steer while the model streams the message that calls the long job: the boundary after
  // that step leaves the call unanswered, so the steer waits for the tool's result. The one
  // release lets both the held model and the job go on.
  async 'graph-steer-while-calling-tool'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const { run, runId } = await ask(session, 'Narrate the reindex');
    await until(session, () => textOf(session, runId) === 'Once upon', 'the call\'s text streaming');
    const s = steer(run, 'also report the weather');
    await s.published();
    await release(channel, 1);
    await s.outcome();
    await ended(session, runId, 'complete');
    return { runId, steer: s.state, text: textOf(session, runId), view: snapshot(session), wire, errors };
  },

  // A steer while the model streams its final answer (no tools): the graph has finished
  // when the answer ends, so it goes round once more with the steer.
  async 'graph-steer-while-answering'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const { run, runId } = await ask(session, 'Tell me a story');
    await until(session, () => textOf(session, runId) === 'Once upon', 'the story streaming');
    const s = steer(run, 'make it short');
    await s.published();
    const pending = { settled: s.state.settled, view: snapshot(session) };
    await release(channel, 1);
    await s.outcome();
    await ended(session, runId, 'complete');
    return { runId, steer: s.state, pending, text: textOf(session, runId), view: snapshot(session), wire, errors };
  },
};

await runScenarios(scenarios);
