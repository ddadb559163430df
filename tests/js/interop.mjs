// ably-js <-> offline broker interop driver, run by tests/ably_broker/test_broker_js.py.
//
//   node interop.mjs <mode> '<json config>'
//
// config: { options: <ably-js client options from broker.js_client_options()>,
//           channel: <name>, ... mode-specific fields }
// Output: JSON lines on stdout. `{"event":"ready"}` when attached (pytest waits for it), then
// exactly one `{"event":"result", ...}` line; errors print `{"event":"error", ...}` and exit 1.
import * as Ably from 'ably';

const [mode, rawConfig] = process.argv.slice(2);
const config = JSON.parse(rawConfig ?? '{}');
const deadline = setTimeout(() => fail(new Error(`timed out in mode ${mode}`)), config.timeoutMs ?? 20000);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(err) {
  emit({ event: 'error', message: String(err?.message ?? err), code: err?.code ?? null });
  process.exit(1);
}

// A JSON-friendly view of a received Message (binary payloads as {"$bytes": base64}).
function view(msg) {
  const data =
    msg.data instanceof Uint8Array || Buffer.isBuffer(msg.data)
      ? { $bytes: Buffer.from(msg.data).toString('base64') }
      : msg.data;
  return {
    id: msg.id,
    action: msg.action,
    name: msg.name ?? null,
    data: data ?? null,
    serial: msg.serial ?? null,
    version: msg.version?.serial ?? null,
    versionClientId: msg.version?.clientId ?? null,
    clientId: msg.clientId ?? null,
    extras: msg.extras ?? null,
  };
}

async function allPages(page) {
  const items = [];
  let pages = 0;
  for (;;) {
    pages += 1;
    items.push(...page.items.map(view));
    if (!page.hasNext()) return { items, pages };
    page = await page.next();
  }
}

async function connect() {
  const client = new Ably.Realtime(config.options);
  await client.connection.once('connected');
  return client;
}

// JS produces: create + appends (+ an update and a binary message), reads history back.
async function produce() {
  const client = await connect();
  const channel = client.channels.get(config.channel);
  await channel.attach();
  const created = await channel.publish({ name: 'ai-output', data: 'Hel', extras: { headers: { k: 'v' } } });
  const serial = created.serials[0];
  const appends = await Promise.all(
    ['lo', ', ', 'world'].map((data) => channel.appendMessage({ serial, data })),
  );
  const binary = await channel.publish('bin', Buffer.from([0, 1, 2, 255]));
  const other = await channel.publish('note', 'to be updated');
  const updated = await channel.updateMessage(
    { serial: other.serials[0], data: 'updated' },
    { description: 'fix' },
  );
  const done = await channel.publish('done', '');
  const history = await allPages(await channel.history({ limit: 2 }));
  const fetched = view(await channel.getMessage(serial));
  emit({
    event: 'result',
    serial,
    appendVersions: appends.map((r) => r.versionSerial),
    binarySerial: binary.serials[0],
    updatedVersion: updated.versionSerial,
    doneSerial: done.serials[0],
    history,
    fetched,
  });
  client.close();
}

// JS consumes: attach, say ready, collect until a message named "done", then history.
async function consume() {
  const client = await connect();
  const channel = client.channels.get(config.channel);
  const received = [];
  let resolveDone;
  const doneSeen = new Promise((resolve) => (resolveDone = resolve));
  await channel.subscribe((msg) => {
    received.push(view(msg));
    if (msg.name === 'done') resolveDone();
  });
  emit({ event: 'ready', attachSerial: channel.properties.attachSerial ?? null });
  await doneSeen;
  const untilAttach = await allPages(await channel.history({ untilAttach: true, limit: 2 }));
  const full = await allPages(await channel.history({ limit: 100 }));
  const forwards = await allPages(await channel.history({ direction: 'forwards', limit: 3 }));
  emit({ event: 'result', received, untilAttach, full, forwards });
  client.close();
}

// JS survives a dropped socket: emits ready (with its connectionId), collects until "done",
// reports the channel state changes it saw (continuity must not be lost).
async function resume() {
  const client = await connect();
  const channel = client.channels.get(config.channel);
  const received = [];
  const channelChanges = [];
  const connectionStates = [];
  let resolveDone;
  const doneSeen = new Promise((resolve) => (resolveDone = resolve));
  await channel.subscribe((msg) => {
    received.push(view(msg));
    if (msg.name === 'done') resolveDone();
  });
  channel.on((change) =>
    channelChanges.push({ current: change.current, previous: change.previous, resumed: change.resumed }),
  );
  client.connection.on((change) => connectionStates.push(change.current));
  const firstId = client.connection.id;
  emit({ event: 'ready', connectionId: firstId });
  await doneSeen;
  emit({
    event: 'result',
    received,
    channelChanges,
    connectionStates,
    firstId,
    lastId: client.connection.id,
  });
  client.close();
}

const modes = { produce, consume, resume };
if (!modes[mode]) fail(new Error(`unknown mode ${mode}`));
modes[mode]()
  .then(() => {
    clearTimeout(deadline);
  })
  .catch(fail);
