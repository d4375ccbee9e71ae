// The process logger: pino, with the node id in every line. `json` writes pino's JSON lines;
// `pretty` turns each into one compact line of text for a terminal, without pino-pretty or a
// worker-thread transport (a log line is never lost in a transport's buffer when the process
// exits, since the destination writes synchronously).

import pino from 'pino';
import type { LogFormat, LogLevel } from './config/schema.js';

export type Logger = pino.Logger;

/** Anything pino can write its lines to. */
export interface LogDestination {
  write(line: string): unknown;
}

export interface CreateLoggerOptions {
  readonly nodeId: number;
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Where lines go; standard output (synchronously) by default. */
  readonly destination?: LogDestination;
}

export function createLogger(options: CreateLoggerOptions): Logger {
  const out = options.destination ?? pino.destination({ dest: 1, sync: true });
  const stream: LogDestination =
    options.format === 'pretty' ? { write: (line) => out.write(formatPrettyLine(line)) } : out;
  return pino({ level: options.level, base: { nodeId: options.nodeId } }, stream);
}

const LEVEL_LABELS: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};

/** Fields every line has, shown in fixed places rather than as key=value. */
const FIXED_FIELDS = new Set(['time', 'level', 'nodeId', 'msg', 'pid', 'hostname']);

/**
 * One pino JSON line as `HH:MM:SS.mmm LEVEL node=N message key=value ...` (local time), with
 * an error's stack on the lines after it. A line that is not a JSON object passes unchanged.
 */
export function formatPrettyLine(jsonLine: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(jsonLine);
  } catch {
    return jsonLine;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return jsonLine;
  const record = entry as Record<string, unknown>;
  const parts = [
    formatTime(record.time),
    typeof record.level === 'number'
      ? (LEVEL_LABELS[record.level] ?? String(record.level))
      : String(record.level),
    `node=${String(record.nodeId)}`,
  ];
  if (typeof record.msg === 'string' && record.msg !== '') parts.push(record.msg);
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (FIXED_FIELDS.has(key)) continue;
    const stack = errorStack(value);
    if (stack !== undefined) {
      parts.push(`${key}=${formatValue((value as { message?: unknown }).message ?? '')}`);
      stacks.push(stack.replace(/^/gm, '    '));
    } else {
      parts.push(`${key}=${formatValue(value)}`);
    }
  }
  return [parts.join(' '), ...stacks].join('\n') + '\n';
}

function formatTime(time: unknown): string {
  const date = new Date(typeof time === 'number' || typeof time === 'string' ? time : Date.now());
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** The stack of a value pino's error serializer produced ({type, message, stack}). */
function errorStack(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack = (value as { stack?: unknown }).stack;
  return typeof stack === 'string' ? stack : undefined;
}

/** Bare when unambiguous (`port=9092`, `topic=orders`), JSON otherwise. */
function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}
