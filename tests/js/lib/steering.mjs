// Steering helpers shared by the steering scenarios (scenarios_steering.mjs,
// scenarios_graph_steering.mjs): the raw wire of a connection, and ClientRun.steer with its
// two promises observed.
import { codec, errorInfo, withTimeout } from './client.mjs';

/** Every message this connection receives on `channel`, in order (the raw wire); its
 * `until(predicate, what)` resolves once a received message satisfies `predicate`. */
export async function tap(client, channel) {
  const seen = [];
  const waiters = new Set();
  await client.channels.get(channel).subscribe((m) => {
    const t = m.extras?.ai?.transport ?? {};
    const entry = {
      kind: m.extras?.ai?.codec?.kind ?? null,
      name: m.name ?? null,
      action: m.action ?? null,
      serial: m.serial ?? null,
      clientId: m.clientId ?? null,
      codecMessageId: t['codec-message-id'] ?? null,
      runId: t['run-id'] ?? null,
      steerIds: t['steer-codec-message-ids'] ?? null,
    };
    seen.push(entry);
    for (const waiter of waiters) waiter(entry);
  });
  const until = (predicate, what) => {
    const found = seen.find(predicate);
    if (found) return Promise.resolve(found);
    let waiter;
    const arrived = new Promise((resolve) => {
      waiter = (entry) => { if (predicate(entry)) resolve(entry); };
      waiters.add(waiter);
    });
    return withTimeout(arrived, what).finally(() => waiters.delete(waiter));
  };
  return Object.assign(seen, { until });
}

export const userMessage = (text) => codec.createUserMessage({ id: crypto.randomUUID(), role: 'user', parts: [{ type: 'text', text }] });

/** ClientRun.steer, its two promises observed: settled value or error, and when. */
export function steer(run, text) {
  const result = run.steer(userMessage(text));
  const state = { published: undefined, outcome: undefined, publishedError: undefined, outcomeError: undefined, settled: false };
  result.published.then((v) => { state.published = v; }, (e) => { state.publishedError = errorInfo(e); });
  result.outcome.then((v) => { state.outcome = v; state.settled = true; }, (e) => { state.outcomeError = errorInfo(e); state.settled = true; });
  return {
    state,
    published: () => withTimeout(result.published.catch(() => undefined), `steer "${text}" published`).then(() => state),
    outcome: () => withTimeout(result.outcome.catch(() => undefined), `steer "${text}" outcome`).then(() => state),
  };
}

/** Both promises of a steer() the SDK refuses, as errors (they must reject). */
export async function refused(run, text) {
  const result = run.steer(userMessage(text));
  const [published, outcome] = await Promise.allSettled([result.published, result.outcome]);
  return { published: published.status === 'rejected' ? errorInfo(published.reason) : { resolved: published.value },
    outcome: outcome.status === 'rejected' ? errorInfo(outcome.reason) : { resolved: outcome.value } };
}
