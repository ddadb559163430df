// The chat: the official client (@ably/ai-transport 0.8) with its Vercel useChat adapter, as
// docs/frontend.md shows it, plus what a real page needs around it: run status per answer
// (from the session's view), tool parts with their state, Stop for any active run of the
// conversation (this tab's or another's), visible errors, and a size check before sending.
import { useChat } from '@ai-sdk/react';
import { ChatTransportProvider, useChatTransport, useMessageSync, useView } from '@ably/ai-transport/vercel/react';
import type { RunInfo } from '@ably/ai-transport';
import * as Ably from 'ably';
import { AblyProvider } from 'ably/react';
import type { UIMessage } from 'ai';
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

import { Message, type RunStatus } from './Message';

/** What `GET /api/config` answers (examples/chat_server.py). */
export interface ServerConfig {
  /** ably-js client options for the service (the offline broker): no credentials. */
  ably: Ably.ClientOptions;
  /** Conversations are the channels `<channelPrefix><session>`. */
  channelPrefix: string;
  /** The token endpoint (ably-js `authUrl`) and the agent endpoint (the useChat POST). */
  authPath: string;
  agentPath: string;
}

/** Larger messages are refused here, before anything is sent: an Ably message is at most
 *  64 KiB, and the question travels in one (the agent's endpoint refuses big bodies too). */
export const MAX_MESSAGE_BYTES = 32 * 1024;

/** How many messages of history a (re)loaded page shows at first; older ones on demand. */
const HISTORY_PAGE = 50;

export function App({ config, session }: { config: ServerConfig; session: string }) {
  const [client, setClient] = useState<Ably.Realtime | null>(null);
  useEffect(() => {
    const authUrl = new URL(config.authPath, window.location.href).href;
    const ably = new Ably.Realtime({ ...config.ably, authUrl });
    setClient(ably);
    return () => ably.close();
  }, [config]);
  if (client === null) return null;
  return (
    <AblyProvider client={client}>
      <ChatTransportProvider channelName={config.channelPrefix + session} api={config.agentPath}>
        <Chat client={client} session={session} />
      </ChatTransportProvider>
    </AblyProvider>
  );
}

function useConnectionState(client: Ably.Realtime) {
  const [state, setState] = useState<Ably.ConnectionState>(client.connection.state);
  useEffect(() => {
    const listener = (change: Ably.ConnectionStateChange) => setState(change.current);
    client.connection.on(listener);
    setState(client.connection.state);
    return () => client.connection.off(listener);
  }, [client]);
  return state;
}

const byteLength = (text: string) => new TextEncoder().encode(text).length;

function describe(error: unknown): string {
  if (error instanceof Error || error instanceof Ably.ErrorInfo) return error.message;
  return String(error);
}

function Chat({ client, session: sessionName }: { client: Ably.Realtime; session: string }) {
  const { session, chatTransport, sessionError } = useChatTransport();
  const { messages, setMessages, sendMessage, status, stop, error, clearError } = useChat({
    transport: chatTransport,
  });
  useMessageSync({ setMessages }); // what other tabs (and the history) hold shows up here too
  // The session's view: the conversation's history (the newest HISTORY_PAGE messages are
  // loaded on mount, older ones on demand) and each run's status, re-rendered as they change.
  const view = useView({ limit: HISTORY_PAGE, skip: sessionError !== undefined });
  const connection = useConnectionState(client);
  const [connected, setConnected] = useState(false); // the session is attached: sending works
  const [input, setInput] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  const [sessionErrors, setSessionErrors] = useState<string[]>([]);
  const log = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (sessionError !== undefined) return;
    let live = true;
    session.connect().then(
      () => live && setConnected(true),
      (e: unknown) => live && setSessionErrors((all) => [...all, `Cannot join the conversation: ${describe(e)}`]),
    );
    const off = session.on('error', (e) => {
      if (live) setSessionErrors((all) => [...all.slice(-2), e.message]);
    });
    return () => {
      live = false;
      off();
    };
  }, [session, sessionError]);

  // Each answer's run, found through the view (the message's codec-message-id names it).
  // Read during render: useView re-renders this component when a run's status changes.
  const runOfMessage = new Map<string, RunInfo>();
  for (const { codecMessageId, message } of view.messages) {
    const run = view.runOf(codecMessageId);
    if (run !== undefined) runOfMessage.set(message.id, run);
  }
  const activeRuns = view.runs().filter((run) => run.status === 'active');

  const busy = status === 'submitted' || status === 'streaming'; // this tab's own turn
  const runActive = busy || activeRuns.length > 0; // any run of the conversation
  const canSend = connected && connection === 'connected' && !busy;

  useEffect(() => {
    const element = log.current;
    if (element !== null) element.scrollTop = element.scrollHeight;
  }, [messages]);

  const statusOf = (message: UIMessage, index: number): RunStatus | undefined => {
    if (message.role !== 'assistant') return undefined;
    const run = runOfMessage.get(message.id);
    if (run !== undefined) return run.status === 'active' ? 'streaming' : run.status;
    // Not in the view yet: this tab's own answer as it starts, unless this tab's turn failed.
    return index === messages.length - 1 && status === 'error' ? 'error' : 'streaming';
  };

  const send = (event: FormEvent) => {
    event.preventDefault();
    const text = input.trim();
    if (text === '' || !canSend) return; // nothing to send (or not now)
    if (error !== undefined) clearError(); // the last turn's failure: this is a new one
    setSessionErrors([]);
    const size = byteLength(text);
    if (size > MAX_MESSAGE_BYTES) {
      setNotice(
        `Not sent: the message is ${size.toLocaleString('en')} bytes, ` +
          `more than the ${MAX_MESSAGE_BYTES.toLocaleString('en')} a message may have.`,
      );
      return;
    }
    setNotice(null);
    setInput('');
    // A failure (the POST refused, the channel unreachable) lands in useChat's `error`.
    sendMessage({ text }).catch((e: unknown) => setNotice(`Not sent: ${describe(e)}`));
  };

  // Stop: this tab's own turn with useChat's stop(); runs started elsewhere by their id.
  // Harmless twice, or once the run has ended: the agent ignores a cancel for an ended run.
  const stopAll = () => {
    void stop();
    for (const run of view.runs()) {
      if (run.status === 'active') {
        session.cancel(run.runId).catch((e: unknown) => setNotice(`Stop failed: ${describe(e)}`));
      }
    }
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      event.currentTarget.form?.requestSubmit();
    }
  };

  const alerts = [
    ...(sessionError !== undefined ? [`Cannot open the conversation: ${sessionError.message}`] : []),
    ...(error !== undefined ? [`No answer: ${error.message}`] : []),
    ...(notice !== null ? [notice] : []),
    ...(view.loadError !== undefined ? [`Cannot load the history: ${view.loadError.message}`] : []),
    ...sessionErrors,
  ];

  return (
    <main className="chat">
      <header>
        <h1>LangGraph chat</h1>
        <span className="session" title="Open this page's URL in another tab to join this conversation">
          conversation <code>{sessionName}</code>
        </span>
        <span className={`connection ${connection}`} data-connection-state={connection}>
          {connection === 'connected' ? (connected ? 'live' : 'joining…') : connection}
        </span>
      </header>
      <div className="log" role="log" aria-label="Conversation" ref={log}>
        {view.hasOlder && (
          <button type="button" className="older" disabled={view.loading} onClick={() => void view.loadOlder()}>
            Show older messages
          </button>
        )}
        {messages.length === 0 && connected && (
          <p className="empty">Ask anything. The agent searches the web (slowly) before it answers: press Stop while it searches.</p>
        )}
        {messages.map((message, index) => (
          <Message key={message.id} message={message} status={statusOf(message, index)}
                   error={runOfMessage.get(message.id)?.error?.message} />
        ))}
      </div>
      {alerts.map((text, i) => (
        <p key={i} role="alert" className="alert">
          {text}
        </p>
      ))}
      <form className="composer" onSubmit={send}>
        <textarea
          aria-label="Message"
          placeholder="Message"
          rows={2}
          value={input}
          onChange={(event) => {
            setInput(event.target.value);
            if (notice !== null) setNotice(null);
          }}
          onKeyDown={onKeyDown}
        />
        <button type="submit" disabled={!canSend}>
          Send
        </button>
        <button type="button" className="stop" hidden={!runActive} onClick={stopAll}>
          Stop
        </button>
      </form>
    </main>
  );
}
