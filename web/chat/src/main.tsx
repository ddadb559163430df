// The page's entry: find the conversation in the URL (?session=, made up and written back when
// absent), read where the Ably service is from the server, then render the chat.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { App, type ServerConfig } from './App';
import './styles.css';

/** The same pattern the server's allow_session checks (examples/chat_server.py). */
const SESSION = /^[A-Za-z0-9_-]{1,64}$/;

/** The conversation this page shows: `?session=` in the URL, or a new one written into it. */
function sessionOfUrl(): string {
  const url = new URL(window.location.href);
  const given = url.searchParams.get('session');
  if (given !== null && SESSION.test(given)) return given;
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  const session = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  url.searchParams.set('session', session);
  window.history.replaceState(null, '', url);
  return session;
}

async function loadConfig(): Promise<ServerConfig> {
  const response = await fetch('/api/config');
  if (!response.ok) throw new Error(`GET /api/config returned ${response.status}`);
  return (await response.json()) as ServerConfig;
}

const root = createRoot(document.getElementById('root')!);
const session = sessionOfUrl();
loadConfig().then(
  (config) =>
    root.render(
      <StrictMode>
        <App config={config} session={session} />
      </StrictMode>,
    ),
  (error: unknown) =>
    root.render(
      <p role="alert" className="alert">
        Cannot reach the chat server: {String(error)}
      </p>,
    ),
);
