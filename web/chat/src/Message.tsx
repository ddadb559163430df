// One message of the conversation: its text, its tool calls with their UI-message state, and
// for an answer its run's status (streaming, complete, cancelled, error, suspended).
import type { UIMessage } from 'ai';

export type RunStatus = 'streaming' | 'complete' | 'cancelled' | 'error' | 'suspended';

type Part = UIMessage['parts'][number];

/** A tool part (`tool-<name>` or `dynamic-tool`) as the UI-message stream builds it. */
interface ToolPart {
  type: string;
  toolName?: string;
  toolCallId: string;
  state: string;
  input?: unknown;
  output?: unknown;
  errorText?: string;
}

const isToolPart = (part: Part): part is Part & ToolPart =>
  part.type === 'dynamic-tool' || part.type.startsWith('tool-');

const TOOL_STATE: Record<string, string> = {
  'input-streaming': 'preparing',
  'input-available': 'running',
  'approval-requested': 'waiting for approval',
  'approval-responded': 'approved',
  'output-available': 'done',
  'output-error': 'failed',
  'output-denied': 'denied',
};

const BADGE: Record<RunStatus, string> = {
  streaming: 'answering…',
  complete: '',
  cancelled: 'Stopped',
  error: 'Error',
  suspended: 'waiting for you',
};

function show(value: unknown): string {
  if (typeof value === 'string') return value;
  const text = JSON.stringify(value);
  return text === undefined ? '' : text;
}

/** The latest `data-search-progress` part (the tool's custom event) of a message. */
function progressOf(message: UIMessage): { source: number; of: number } | undefined {
  for (let i = message.parts.length - 1; i >= 0; i--) {
    const part = message.parts[i]!;
    if (part.type === 'data-search-progress') return (part as { data: { source: number; of: number } }).data;
  }
  return undefined;
}

function Tool({ part, progress, stopped }: { part: ToolPart; progress?: { source: number; of: number }; stopped: boolean }) {
  const name = part.type === 'dynamic-tool' ? (part.toolName ?? 'tool') : part.type.slice('tool-'.length);
  return (
    <div className={`tool ${part.state}`} data-tool-state={part.state} data-tool-name={name}>
      <div className="tool-head">
        <span className="tool-name">{name}</span>
        {part.input !== undefined && <code className="tool-input">{show(part.input)}</code>}
        <span className="tool-state">
          {part.state === 'output-error' && stopped ? 'stopped' : (TOOL_STATE[part.state] ?? part.state)}
          {part.state === 'input-available' && progress !== undefined && ` (source ${progress.source} of ${progress.of})`}
        </span>
      </div>
      {part.state === 'output-available' && <div className="tool-output">{show(part.output)}</div>}
      {part.state === 'output-error' && <div className="tool-error">{part.errorText}</div>}
    </div>
  );
}

export function Message({ message, status, error }: { message: UIMessage; status?: RunStatus; error?: string }) {
  const progress = progressOf(message);
  return (
    <article
      className={`message ${message.role}${status !== undefined ? ` ${status}` : ''}`}
      data-message-role={message.role}
      data-run-status={status}
    >
      <div className="who">
        {message.role === 'user' ? 'You' : 'Agent'}
        {status !== undefined && BADGE[status] !== '' && (
          <span className={`badge ${status}`}>{status === 'error' && error ? `Error: ${error}` : BADGE[status]}</span>
        )}
      </div>
      {message.parts.map((part, i) => {
        if (part.type === 'text') return <p key={i} className="text">{part.text}</p>;
        if (isToolPart(part)) return <Tool key={i} part={part} progress={progress} stopped={status === 'cancelled'} />;
        return null;
      })}
    </article>
  );
}
