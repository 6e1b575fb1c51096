/**
 * The panel's WebSocket to `{base_url}cloudws/api/panel`, reconnected with backoff.
 *
 * URL, token and WebSocket class come from JupyterLab's ServerConnection settings, so the panel
 * authenticates exactly as JupyterLab's own sockets do (cookies go with the handshake; the token
 * is appended when the page was opened with one).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { parseFrame, ServerFrame } from './model';

export const PANEL_PATH = 'cloudws/api/panel';
/** The server takes frames up to 1 MiB (docs/protocol.md). */
export const MAX_FRAME_BYTES = 1024 * 1024;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export type ConnectionState = 'connecting' | 'open' | 'waiting' | 'closed';

export interface IConnectionStatus {
  state: ConnectionState;
  /** Failed attempts in a row (0 once a connection opened). */
  failures: number;
  /** When waiting: how long until the next attempt. */
  retryInMs?: number;
}

export interface IConnectionOptions {
  settings: ServerConnection.ISettings;
  onFrame: (frame: ServerFrame) => void;
  onStatus: (status: IConnectionStatus) => void;
  /** A frame that is not one of the server's frames (logged, never fatal). */
  onBadFrame?: (text: string) => void;
}

/** The URL of the panel socket for these settings (token appended as JupyterLab's sockets do). */
export function panelUrl(settings: ServerConnection.ISettings): string {
  let url = URLExt.join(settings.wsUrl, PANEL_PATH);
  if (settings.appendToken && settings.token) {
    url += `?token=${encodeURIComponent(settings.token)}`;
  }
  return url;
}

/** Milliseconds to wait before attempt `failures + 1`: doubling from 0.5 s up to 30 s, +-20 %. */
export function backoffMs(failures: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export class PanelConnection {
  constructor(options: IConnectionOptions) {
    this._options = options;
  }

  get isOpen(): boolean {
    return this._socket?.readyState === WebSocket.OPEN;
  }

  /** Connect (again) now; a pending retry is cancelled. */
  start(): void {
    if (this._disposed) {
      return;
    }
    clearTimeout(this._retry);
    this._retry = undefined;
    if (this._socket && this._socket.readyState <= WebSocket.OPEN) {
      return; // connecting or open already
    }
    const { settings } = this._options;
    const socket = new settings.WebSocket(panelUrl(settings));
    this._socket = socket;
    this._status({ state: 'connecting', failures: this._failures });
    socket.onopen = () => {
      this._failures = 0;
      this._status({ state: 'open', failures: 0 });
    };
    socket.onmessage = event => {
      const text = typeof event.data === 'string' ? event.data : '';
      const frame = parseFrame(text);
      if (frame) {
        this._options.onFrame(frame);
      } else {
        this._options.onBadFrame?.(text);
      }
    };
    socket.onclose = () => {
      if (this._socket !== socket) {
        return;
      }
      this._socket = undefined;
      if (this._disposed) {
        return;
      }
      this._failures += 1;
      const delay = backoffMs(this._failures);
      this._status({ state: 'waiting', failures: this._failures, retryInMs: delay });
      this._retry = setTimeout(() => this.start(), delay);
    };
  }

  /** Write one frame; false (nothing sent) when the socket is not open or the frame too large. */
  send(frame: unknown): boolean {
    if (!this.isOpen) {
      return false;
    }
    const text = JSON.stringify(frame);
    if (new TextEncoder().encode(text).length > MAX_FRAME_BYTES) {
      console.error('jupyter-cloudws: a frame over 1 MiB was not sent');
      return false;
    }
    this._socket!.send(text);
    return true;
  }

  dispose(): void {
    this._disposed = true;
    clearTimeout(this._retry);
    const socket = this._socket;
    this._socket = undefined;
    socket?.close();
    this._status({ state: 'closed', failures: this._failures });
  }

  private _status(status: IConnectionStatus): void {
    this._options.onStatus(status);
  }

  private _options: IConnectionOptions;
  private _socket: WebSocket | undefined;
  private _retry: ReturnType<typeof setTimeout> | undefined;
  private _failures = 0;
  private _disposed = false;
}
