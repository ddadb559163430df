// The measuring client of bench/network.py: the OFFICIAL JS client (@ably/ai-transport 0.8,
// its Vercel ChatTransport and ai@7's Chat, which useChat wraps) connected straight to the
// offline broker, driving two agent endpoints in turn and timing what a front end sees.
//
//   node tests/js/bench/driver.mjs '<json config>'     (started by bench/network.py, bench/bargein.py)
//
// config: { ably: <ably-js options without clientId>, agents: [{name, url, mode?}, ...], prefix,
//           groups: ["turns", "cancel", "stop", "tokens", "bargein"], samples: {turns, cancel,
//           stop, tokens, bargein}, scripts: {text, hold, fast} ({tokens, intervalMs} each),
//           turnsPerConversation, thinkMs, openMs, seed, timeoutMs, tokensTimeoutMs }
//
// openMs (turns only): the pause between a conversation's channel opening and its first send,
// as a user reads and types; an agent that prewarms sessions attaches meanwhile.
//
// The "bargein" group (bench/bargein.py) barges in on a streaming answer; an agent's `mode`
// says how: "interrupt" (view.send + POST of the new message; the agent's multitask strategy
// cancels the old run), "cancel-wait" (session.cancel(runId), wait until the run is seen
// cancelled, then view.send + POST) or "cancel-send" (session.cancel(runId) not awaited, then
// view.send + POST at once). Two agent entries may share a url.
//
// Prints one JSON line per sample, {"kind": "sample", "group", "agent", "index", ...figures},
// then {"kind": "done"}; on a failure {"kind": "error", "group", "agent", "error"} and exit 1.
// Samples of the agents are interleaved: sample i of every agent before sample i + 1 of any,
// the order of the agents alternating from one index to the next (AB BA AB ...).
//
// All times are performance.now() in this process, in ms. "Seen" is when the client's Tree
// emitted the event: `run` (type start / end, with a channel serial, so never an optimistic
// local event) and `output` (the decoded text-delta events of one inbound message).
import * as Ably from 'ably';
import { createChatTransport, createClientSession } from '@ably/ai-transport/vercel';
import { NodeChat, send, textOfMessage, withTimeout } from '../lib/client.mjs';

const config = JSON.parse(process.argv[2] ?? '{}');
const TIMEOUT_MS = config.timeoutMs ?? 20000;
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// mulberry32: a seeded PRNG for the pause before each cancel.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(config.seed ?? 1);

function emit(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

// -- a conversation: one client session on its own channel, watched ---------------------------

class Conversation {
  constructor(client, channelName) {
    this.client = client;
    this.channelName = channelName;
    this.session = createClientSession({ client, channelName });
    this.errors = [];
    this.outputs = new Map(); // inputCodecMessageId -> {first, firstChars, last, chars, messages}
    this.starts = new Map(); // runId -> time the ai-run-start was seen
    this.ends = new Map(); // runId -> {t, reason}
    this.waiters = new Set();
    this.session.on('error', (error) => this.errors.push(String(error?.message ?? error)));
    this.session.tree.on('output', (event) => {
      const t = now();
      if (!event.inputCodecMessageId) return;
      let chars = 0;
      for (const e of event.events) if (e.type === 'text-delta') chars += e.delta.length;
      if (!chars) return;
      let seen = this.outputs.get(event.inputCodecMessageId);
      if (!seen) {
        seen = { first: t, firstChars: chars, last: t, chars: 0, messages: 0 };
        this.outputs.set(event.inputCodecMessageId, seen);
      }
      seen.last = t;
      seen.chars += chars;
      seen.messages += 1;
      this.poke();
    });
    this.session.tree.on('run', (event) => {
      if (event.serial === undefined) return; // an optimistic local event, not the agent's
      const t = now();
      if (event.type === 'start' && !this.starts.has(event.runId)) this.starts.set(event.runId, t);
      if (event.type === 'end' && !this.ends.has(event.runId)) this.ends.set(event.runId, { t, reason: event.reason });
      this.poke();
    });
  }

  async connect() {
    await this.session.connect();
    return this;
  }

  poke() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolve with predicate() once truthy, re-checked on every event of this conversation. */
  until(predicate, what, ms = TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = predicate();
        if (value) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what} on ${this.channelName}; errors: ${JSON.stringify(this.errors)}`));
      }, ms);
      this.waiters.add(check);
      check();
    });
  }

  ended(runId, reason, ms = TIMEOUT_MS) {
    return this.until(() => this.ends.get(runId), `the end of run ${runId}`, ms).then((end) => {
      if (end.reason !== reason) throw new Error(`run ${runId} ended ${end.reason}, expected ${reason}`);
      return end;
    });
  }

  async close() {
    await this.session.close().catch(() => {});
  }
}

async function post(agent, run, scenario, script) {
  const response = await fetch(agent.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...run.toInvocation().toJSON(), scenario, ...script }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`POST answered ${response.status}: ${JSON.stringify(body)}`);
  return { body, serverMs: serverTiming(response.headers.get('server-timing')) };
}

/** The agent's own time for the POST, from its `Server-Timing: app;dur=<ms>` header. */
function serverTiming(header) {
  const match = /(?:^|,)\s*app;dur=([0-9.]+)/.exec(header ?? '');
  return match ? Number(match[1]) : null;
}

/**
 * One turn as a front end makes it: view.send (publishes the input), then POST the invocation.
 * Resolves once the first text delta was seen, with the times from just before view.send.
 */
async function turn(conversation, agent, scenario, script) {
  const t0 = now();
  const run = await send(conversation.session, `${scenario} please`);
  const sent = now();
  const startSeen = run.started.then(() => now());
  startSeen.catch(() => {});
  const { serverMs } = await post(agent, run, scenario, script);
  const posted = now();
  const started = await withTimeout(startSeen, `ai-run-start of ${agent.name}'s ${scenario} run`);
  const output = await conversation.until(() => conversation.outputs.get(run.inputCodecMessageId), 'the first text delta');
  return {
    run,
    runId: run.runId,
    t0,
    output,
    figures: {
      sendMs: sent - t0,
      postMs: posted - sent,
      postServerMs: serverMs,
      startMs: started - t0,
      firstDeltaMs: output.first - t0,
      epochMs: performance.timeOrigin + t0, // for bench/network.py --trace
      channel: conversation.channelName,
    },
  };
}

// -- the groups ------------------------------------------------------------------------------------

const conversationName = (agent, group, index) => `${config.prefix}-${agent.name}-${group}-${index}`;

/** Blocks of up to turnsPerConversation turns on one conversation per agent. */
function blocks(agent, group) {
  const perConversation = config.turnsPerConversation ?? 10;
  let conversation;
  let used = 0;
  let block = 0;
  return {
    async next() {
      if (!conversation || used >= perConversation) {
        if (conversation) await conversation.close();
        conversation = await new Conversation(agent.client, conversationName(agent, group, block++)).connect();
        used = 0;
      }
      used += 1;
      return conversation;
    },
    async close() {
      if (conversation) await conversation.close();
    },
  };
}

const groups = {
  // First turn of a fresh conversation, then the next turn of the same conversation.
  turns: () => ({
    async sample(agent, index) {
      const conversation = await new Conversation(agent.client, conversationName(agent, 'turns', index)).connect();
      try {
        if (config.openMs) await sleep(config.openMs);
        const first = await turn(conversation, agent, 'text', config.scripts.text);
        await conversation.ended(first.runId, 'complete');
        await sleep(config.thinkMs);
        const next = await turn(conversation, agent, 'text', config.scripts.text);
        await conversation.ended(next.runId, 'complete');
        await sleep(config.thinkMs);
        return { first: first.figures, next: next.figures };
      } finally {
        await conversation.close();
      }
    },
  }),

  // session.cancel(runId) once the answer streams -> the run's ai-run-end (cancelled) seen.
  cancel: (agent) => {
    const conversations = blocks(agent, 'cancel');
    return {
      async sample() {
        const conversation = await conversations.next();
        const started = await turn(conversation, agent, 'hold', config.scripts.hold);
        await sleep(random() * config.scripts.hold.intervalMs); // a random phase of the stream
        const t0 = now();
        await conversation.session.cancel(started.runId);
        const published = now();
        const end = await conversation.ended(started.runId, 'cancelled');
        await sleep(config.thinkMs);
        return {
          cancelMs: end.t - t0,
          cancelPublishMs: published - t0,
          epochMs: performance.timeOrigin + t0,
          channel: conversation.channelName,
          turn: started.figures,
        };
      },
      close: () => conversations.close(),
    };
  },

  // useChat's Stop: ai@7's Chat on the Vercel ChatTransport; chat.stop() once text shows.
  stop: (agent) => {
    const conversations = blocks(agent, 'stop');
    const chats = new Map();
    return {
      async sample() {
        const conversation = await conversations.next();
        let chat = chats.get(conversation);
        if (!chat) {
          const transport = createChatTransport(conversation.session, {
            api: agent.url,
            prepareSendMessagesRequest: () => ({ body: { scenario: 'stop', ...config.scripts.hold } }),
          });
          chat = new NodeChat({ transport });
          chats.set(conversation, chat);
        }
        const before = new Set(conversation.starts.keys());
        const t0 = now();
        const sending = chat.sendMessage({ text: 'a long one' });
        await chat.until(() => {
          const last = chat.messages.at(-1);
          return last?.role === 'assistant' && chat.status === 'streaming' && textOfMessage(last).length > 0;
        }, 'text in useChat');
        const shown = now();
        const runId = await conversation.until(() => [...conversation.starts.keys()].find((id) => !before.has(id)), 'the run id');
        await sleep(random() * config.scripts.hold.intervalMs);
        const t1 = now();
        await chat.stop();
        const end = await conversation.ended(runId, 'cancelled');
        await sending;
        await chat.until(() => chat.status === 'ready', 'useChat ready');
        await sleep(config.thinkMs);
        return { stopMs: end.t - t1, textShownMs: shown - t0 };
      },
      close: () => conversations.close(),
    };
  },

  // A fast answer of scripts.fast.tokens tokens: streaming rate as the client sees it.
  tokens: (agent) => {
    const conversations = blocks(agent, 'tokens');
    return {
      async sample() {
        const conversation = await conversations.next();
        const script = config.scripts.fast;
        const started = await turn(conversation, agent, 'fast', script);
        // An agent that awaits each append's acknowledgement needs a round trip per token.
        const end = await conversation.ended(started.runId, 'complete', config.tokensTimeoutMs ?? TIMEOUT_MS);
        const seen = started.output;
        const tokenChars = 4 * script.tokens;
        if (seen.chars !== tokenChars) throw new Error(`the client saw ${seen.chars} characters, expected ${tokenChars}`);
        await sleep(config.thinkMs);
        return {
          tokens: script.tokens,
          firstToLastMs: seen.last - seen.first,
          tokensAfterFirst: (seen.chars - seen.firstChars) / 4,
          sendToEndMs: end.t - started.t0,
          firstDeltaMs: started.figures.firstDeltaMs,
          messages: seen.messages,
        };
      },
      close: () => conversations.close(),
    };
  },
};

// -- barge-in (bench/bargein.py) ---------------------------------------------------------------

/** view.send + POST of the barging message; times from t0. */
async function bargeSend(conversation, agent, t0) {
  const run = await send(conversation.session, 'no, something else');
  const sent = now();
  const startSeen = run.started.then(() => now());
  startSeen.catch(() => {});
  const { body: answer } = await post(agent, run, 'barge', config.scripts.text);
  const posted = now();
  return { run, sentMs: sent - t0, postMs: posted - sent, startSeen, answer };
}

/**
 * A long answer streams; once its first delta was seen (and a random part of one token
 * interval passed) the user barges in at t0. Figures from t0: the old run's ai-run-end
 * (cancelled) seen, the new run's ai-run-start seen, its first text delta seen.
 */
async function bargeIn(conversation, agent) {
  const old = await turn(conversation, agent, 'hold', config.scripts.hold);
  await sleep(random() * config.scripts.hold.intervalMs);
  const t0 = now();
  let barge;
  let cancelPublishMs = null;
  let sendAtMs = 0;
  if (agent.mode === 'interrupt') {
    barge = await bargeSend(conversation, agent, t0); // the agent cancels the old run itself
  } else if (agent.mode === 'cancel-wait') {
    await conversation.session.cancel(old.runId);
    cancelPublishMs = now() - t0;
    await conversation.ended(old.runId, 'cancelled');
    sendAtMs = now() - t0;
    barge = await bargeSend(conversation, agent, t0);
  } else if (agent.mode === 'cancel-send') {
    const cancelling = conversation.session.cancel(old.runId); // as the README's `void session.cancel`
    cancelling.catch(() => {});
    barge = await bargeSend(conversation, agent, t0);
    await cancelling;
  } else {
    throw new Error(`unknown barge-in mode ${agent.mode}`);
  }
  const started = await withTimeout(barge.startSeen, `ai-run-start of the barging run`);
  const output = await conversation.until(() => conversation.outputs.get(barge.run.inputCodecMessageId), 'the first text delta of the barging run');
  const oldEnd = await conversation.ended(old.runId, 'cancelled');
  const newRunId = barge.run.runId;
  if (newRunId === old.runId) throw new Error('the barging message joined the old run');
  await conversation.ended(newRunId, 'complete');
  await sleep(config.thinkMs);
  return {
    mode: agent.mode,
    cancelledMs: oldEnd.t - t0,
    startMs: started - t0,
    firstDeltaMs: output.first - t0,
    sendAtMs,
    sentMs: barge.sentMs,
    postMs: barge.postMs,
    cancelPublishMs,
    oldBeforeNewStart: oldEnd.t <= started,
    epochMs: performance.timeOrigin + t0, // for bench/bargein.py --trace
    channel: conversation.channelName,
    hold: old.figures,
  };
}

groups.bargein = (agent) => {
  const conversations = blocks(agent, 'bargein');
  return {
    sample: async () => bargeIn(await conversations.next(), agent),
    close: () => conversations.close(),
  };
};

// -- main ---------------------------------------------------------------------------------------

const clients = [];
const agents = config.agents.map((agent) => {
  const client = new Ably.Realtime({ ...config.ably, clientId: `user-${agent.name}` });
  clients.push(client);
  return { ...agent, client };
});

async function main() {
  await Promise.all(clients.map((client) => client.connection.whenState('connected')));
  // Warm-up, discarded: one turn per agent (Node's fetch, both agents' code paths).
  for (const agent of agents) {
    const conversation = await new Conversation(agent.client, conversationName(agent, 'warmup', 0)).connect();
    const warm = await turn(conversation, agent, 'text', config.scripts.text);
    await conversation.ended(warm.runId, 'complete');
    await conversation.close();
  }
  for (const name of config.groups) {
    const count = config.samples[name];
    const groupStarted = now();
    const runners = new Map(agents.map((agent) => [agent, groups[name](agent)]));
    for (let index = 0; index < count; index++) {
      const order = index % 2 === 0 ? agents : [...agents].reverse();
      for (const agent of order) {
        let figures;
        try {
          figures = await runners.get(agent).sample(agent, index);
        } catch (error) {
          emit({ kind: 'error', group: name, agent: agent.name, index, error: String(error?.stack ?? error) });
          process.exit(1);
        }
        emit({ kind: 'sample', group: name, agent: agent.name, index, ...figures });
      }
    }
    for (const runner of runners.values()) await runner.close?.();
    emit({ kind: 'group', group: name, seconds: (now() - groupStarted) / 1000 });
  }
  emit({ kind: 'done' });
}

try {
  await main();
} catch (error) {
  emit({ kind: 'error', group: 'setup', agent: '-', index: 0, error: String(error?.stack ?? error) });
  process.exit(1);
}
for (const client of clients) client.close();
process.exit(0);
