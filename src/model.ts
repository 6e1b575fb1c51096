/**
 * The model chat.js talks to: the surface of an anywidget model (`get`, `set`, `on`/`off`,
 * `send`, `save_changes`), backed by the panel's WebSocket instead of a kernel comm.
 *
 * The server's controller owns the state; it arrives as `hello` (all of it) and `state` frames
 * (what changed). `set` from chat.js stays local, as it does in the notebook widget, where
 * chat.js never calls `save_changes`.
 */

/** What the server sends (see docs/protocol.md, "Panel channel"). */
export type ServerFrame =
  | { type: 'hello'; version: string; state: Record<string, unknown>; css?: string }
  | { type: 'state'; changes: Record<string, unknown> }
  | { type: 'msg'; content: Record<string, unknown> }
  | { type: 'error'; code: string; message: string };

export type Listener = (...args: any[]) => void;

/** The frame's parts, or null when it is not one of the server's frames. */
export function parseFrame(text: string): ServerFrame | null {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof frame !== 'object' || frame === null) {
    return null;
  }
  const f = frame as Record<string, unknown>;
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  switch (f.type) {
    case 'hello':
      return isObject(f.state) ? (f as ServerFrame) : null;
    case 'state':
      return isObject(f.changes) ? (f as ServerFrame) : null;
    case 'msg':
      return isObject(f.content) ? (f as ServerFrame) : null;
    case 'error':
      return f as ServerFrame;
    default:
      return null;
  }
}

export class PanelModel {
  /** @param sendFrame writes one browser -> server frame; false when the socket is not open. */
  constructor(sendFrame: (frame: { type: 'msg'; content: unknown }) => boolean) {
    this._sendFrame = sendFrame;
  }

  get(name: string): any {
    return this._state.get(name);
  }

  /** A local change, as anywidget's `set`: listeners of `change:<name>` run at once. A new array or
   * object counts as a change (compared by identity: a deep compare would cost the transcript's
   * length on every event). */
  set(name: string, value: unknown): void {
    if (this._state.get(name) === value && this._state.has(name)) {
      return;
    }
    this._state.set(name, value);
    this._emit(`change:${name}`, this, value);
  }

  /** Nothing to save: traits flow from the server; chat.js talks back with `send`. */
  save_changes(): void {
    // The notebook widget's chat.js never saves either; the server ignores browser-side traits.
  }

  on(event: string, callback: Listener): void {
    let listeners = this._listeners.get(event);
    if (!listeners) {
      listeners = new Set();
      this._listeners.set(event, listeners);
    }
    listeners.add(callback);
  }

  off(event?: string, callback?: Listener): void {
    if (event === undefined) {
      this._listeners.clear();
    } else if (callback === undefined) {
      this._listeners.delete(event);
    } else {
      this._listeners.get(event)?.delete(callback);
    }
  }

  /** chat.js's custom message to the controller; dropped (false) while disconnected. */
  send(content: unknown): boolean {
    return this._sendFrame({ type: 'msg', content });
  }

  /** Apply a server frame: `hello` replaces the whole state, `state` some traits, `msg` goes to
   * the `msg:custom` listeners as `(content, buffers)`. */
  receive(frame: ServerFrame): void {
    if (frame.type === 'hello') {
      for (const [name, value] of Object.entries(frame.state)) {
        this.set(name, value);
      }
    } else if (frame.type === 'state') {
      for (const [name, value] of Object.entries(frame.changes)) {
        this.set(name, value);
      }
    } else if (frame.type === 'msg') {
      this._emit('msg:custom', frame.content, []);
    }
  }

  private _emit(event: string, ...args: unknown[]): void {
    // A copy: a listener may remove itself (or others) while the event is delivered.
    for (const listener of [...(this._listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch (error) {
        console.error(`jupyter-cloudws: a ${event} listener failed`, error);
      }
    }
  }

  private _state = new Map<string, unknown>();
  private _listeners = new Map<string, Set<Listener>>();
  private _sendFrame: (frame: { type: 'msg'; content: unknown }) => boolean;
}
