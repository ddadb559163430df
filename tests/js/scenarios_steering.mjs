// Steering with the official client (@ably/ai-transport 0.8, ClientRun.steer) against the Python
// steering agent (tests/js/steer_agent.py: `while run.has_input(): await run.pipe(answer)`).
// Run by tests/js/test_interop_steering.py:
//
//   node scenarios_steering.mjs '<json config>'        (config: see lib/client.mjs)
//
// The POST body's fields pick the agent's behaviour (holdFor, release, tool: see
// steer_agent.py). Each scenario reports what the client saw: the steer's `published` and
// `outcome` as the SDK resolved them, whether the outcome was still pending at a suspend, the
// view before and after the answer, and every Ably message its connection received (name,
// action, codec-message-id, run-id and the `steer-codec-message-ids` header), so the pytest
// side can check the header is on every message of exactly the answering output message.
import {
  codec,
  config,
  ended,
  loadHistory,
  open,
  runScenarios,
  send,
  snapshot,
  started,
  statusOf,
  textOf,
  toolPart,
  until,
} from './lib/client.mjs';
import { refused, steer, tap } from './lib/steering.mjs';

/** POST the run's invocation with this agent behaviour. */
async function wake(run, body) {
  const response = await fetch(config.agentUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...run.toInvocation().toJSON(), ...body }),
  });
  return { status: response.status, body: await response.json() };
}

const release = (channel) =>
  fetch(new URL('/test/steer-release', config.agentUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ session: channel }),
  });

/** Let every already-queued callback run (a promise settled by the message just folded). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

const scenarios = {
  // A steer while the first pass streams: the agent's next pass takes it in.
  async 'steer-while-streaming'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const run = await send(session, 'write a poem');
    const http = await wake(run, { scenario: 'steer-while-streaming', holdFor: 1, release: true });
    const runId = await started(session, run);
    await until(session, () => textOf(session, runId) === 'one two ', 'two tokens');
    const s = steer(run, 'make it rhyme');
    await s.published();
    const pending = { settled: s.state.settled, view: snapshot(session) }; // the agent holds
    await release(channel);
    await s.outcome();
    await ended(session, runId, 'complete');
    const after = await refused(run, 'too late');
    return { http, runId, steer: s.state, pending, view: snapshot(session), after, wire, errors };
  },

  // A steer the agent holds when the client's cancel arrives: the cancel overtakes it.
  async 'steer-overtaken-by-cancel'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const run = await send(session, 'write a poem');
    await wake(run, { scenario: 'steer-overtaken-by-cancel', holdFor: 'cancel' });
    const runId = await started(session, run);
    await until(session, () => textOf(session, runId) === 'one two ', 'two tokens');
    const s = steer(run, 'make it rhyme');
    await s.published();
    await session.cancel(runId);
    await s.outcome();
    await ended(session, runId, 'cancelled');
    return { runId, steer: s.state, view: snapshot(session), wire, errors };
  },

  // A steer published right after the client's cancel; then a steer() after the run ended.
  async 'steer-after-cancel'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const run = await send(session, 'write a poem');
    await wake(run, { scenario: 'steer-after-cancel', holdFor: 'cancel' });
    const runId = await started(session, run);
    await until(session, () => textOf(session, runId) === 'one two ', 'two tokens');
    await session.cancel(runId);
    const s = steer(run, 'make it rhyme');
    await s.outcome();
    await ended(session, runId, 'cancelled');
    const after = await refused(run, 'too late');
    // The run's end may come back before the steer's own echo: wait for it on the wire.
    await wire.until((m) => m.name === 'ai-input' && m.runId === runId, 'the steer on the wire');
    return { runId, steer: s.state, after, view: snapshot(session), wire, errors };
  },

  // A steer into a suspended run (a client tool call): the resume's first pass takes it in.
  async 'steer-into-suspended'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const run = await send(session, 'where am I?');
    await wake(run, { scenario: 'steer-into-suspended', tool: true });
    const runId = await started(session, run);
    await until(session, () => statusOf(session, runId) === 'suspended', 'the run suspended');
    const s = steer(run, 'and the weather?');
    await s.published();
    const atSuspend = { settled: s.state.settled, view: snapshot(session) };
    const asked = toolPart(session);
    const result = codec.createToolResult(asked.codecMessageId, { toolCallId: asked.toolCallId, output: { city: 'Paris' } });
    const continuation = await session.view.send([result], { runId });
    const http = await wake(continuation, { scenario: 'steer-into-suspended', tool: true, resume: true });
    await started(session, continuation);
    await s.outcome();
    await ended(session, runId, 'complete');
    return { runId, http, steer: s.state, atSuspend, tool: toolPart(session), view: snapshot(session), wire, errors };
  },

  // A steer the agent received while it streamed its tool call, then it suspended without
  // another has_input(): the outcome stays pending across the suspend; the resume answers it.
  async 'steer-pending-at-suspend'(channel) {
    const { session, errors, client } = await open('user-1', channel);
    const wire = await tap(client, channel);
    const run = await send(session, 'where am I?');
    await wake(run, { scenario: 'steer-pending-at-suspend', tool: true, holdFor: 1 });
    const runId = await started(session, run);
    await until(session, () => toolPart(session)?.state === 'input-streaming', 'the tool call streaming');
    const s = steer(run, 'and the weather?');
    await s.published();
    await until(session, () => statusOf(session, runId) === 'suspended', 'the run suspended');
    await settle();
    const atSuspend = { settled: s.state.settled, view: snapshot(session) };
    const asked = toolPart(session);
    const result = codec.createToolResult(asked.codecMessageId, { toolCallId: asked.toolCallId, output: { city: 'Paris' } });
    const continuation = await session.view.send([result], { runId });
    await wake(continuation, { scenario: 'steer-pending-at-suspend', tool: true, resume: true });
    await started(session, continuation);
    await s.outcome();
    await ended(session, runId, 'complete');
    return { runId, steer: s.state, atSuspend, view: snapshot(session), wire, errors };
  },

  // Two official clients (user-1 sent the run, user-2 answered its tool call and so holds a
  // ClientRun for it too) steer the same run while it streams: one pass takes both in.
  async 'two-clients-steer'(channel) {
    const a = await open('user-1', channel);
    const wire = await tap(a.client, channel);
    const run = await send(a.session, 'where am I?');
    await wake(run, { scenario: 'two-clients-steer', tool: true });
    const runId = await started(a.session, run);
    await until(a.session, () => statusOf(a.session, runId) === 'suspended', 'the run suspended');
    const b = await open('user-2', channel);
    await loadHistory(b.session);
    await until(b.session, () => statusOf(b.session, runId) === 'suspended', 'the suspended run, seen by user-2');
    const asked = toolPart(b.session);
    const result = codec.createToolResult(asked.codecMessageId, { toolCallId: asked.toolCallId, output: { city: 'Paris' } });
    const continuation = await b.session.view.send([result], { runId });
    await wake(continuation, { scenario: 'two-clients-steer', tool: true, resume: true, holdFor: 2 });
    await started(b.session, continuation);
    await until(a.session, () => textOf(a.session, runId).endsWith('You are in '), 'the resumed answer streaming');
    const fromA = steer(run, 'say it in French');
    const fromB = steer(continuation, 'and add the weather');
    await Promise.all([fromA.published(), fromB.published()]);
    await Promise.all([fromA.outcome(), fromB.outcome()]);
    await ended(a.session, runId, 'complete');
    await ended(b.session, runId, 'complete');
    return {
      runId,
      continuationRunId: continuation.runId,
      a: { steer: fromA.state, view: snapshot(a.session), errors: a.errors },
      b: { steer: fromB.state, view: snapshot(b.session), errors: b.errors },
      wire,
    };
  },
};

await runScenarios(scenarios);
