// ably-js presence against the offline broker, run by tests/ably_broker/test_presence_js.py.
//
//   node presence_observer.mjs observe '<json config>'
//
// config: { options: <broker.js_client_options()>, channel: <name>, watch: <clientId>,
//           data: <presence data to enter with> }
// Attaches, reads the presence set (presence.get() waits for the SYNC), subscribes, enters
// itself, then prints {"event":"ready", connectionId, members}. Every presence event is
// recorded until `watch` leaves; then it prints {"event":"result", events} and closes cleanly.
import * as Ably from 'ably';

const [mode, rawConfig] = process.argv.slice(2);
const config = JSON.parse(rawConfig ?? '{}');
if (mode !== 'observe') fail(new Error(`unknown mode ${mode}`));
const deadline = setTimeout(() => fail(new Error('timed out')), config.timeoutMs ?? 20000);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(err) {
  emit({ event: 'error', message: String(err?.message ?? err), code: err?.code ?? null });
  process.exit(1);
}

function view(p) {
  return {
    action: p.action,
    clientId: p.clientId,
    connectionId: p.connectionId,
    data: p.data ?? null,
    id: p.id,
    timestamp: p.timestamp,
  };
}

try {
  const client = new Ably.Realtime(config.options);
  await client.connection.once('connected');
  const channel = client.channels.get(config.channel);
  const members = await channel.presence.get();
  const events = [];
  const left = new Promise((resolve) => {
    channel.presence.subscribe((p) => {
      events.push(view(p));
      if (p.action === 'leave' && p.clientId === config.watch) resolve();
    });
  });
  await channel.presence.enter(config.data);
  emit({
    event: 'ready',
    connectionId: client.connection.id,
    syncComplete: channel.presence.syncComplete,
    members: members.map(view),
  });
  await left;
  emit({ event: 'result', events });
  client.close();
  await client.connection.once('closed');
  clearTimeout(deadline);
} catch (err) {
  fail(err);
}
