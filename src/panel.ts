/**
 * The "Claude Code" side panel: chat.js (the notebook widget's front end, one source) rendered
 * on a model backed by the panel WebSocket. No kernel is involved: the chat's controller runs in
 * the Jupyter server, one per open panel.
 */
import { ServerConnection } from '@jupyterlab/services';
import { Toolbar } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';
import { ISignal, Signal } from '@lumino/signaling';

import chat from '../jupyter_cloudws/widget/chat.js';
import { IConnectionStatus, PanelConnection } from './connection';
import { PanelModel, ServerFrame } from './model';

export const PANEL_ID = 'jupyter-cloudws-panel';
const STORAGE_PREFIX = 'jupyter-cloudws:last-session:';

/** The localStorage key of the last opened session for the server at `baseUrl`. */
export function lastSessionKey(baseUrl: string): string {
  return STORAGE_PREFIX + baseUrl;
}

export interface ICloudwsPanelOptions {
  settings?: ServerConnection.ISettings;
  /** Where the last opened session id is remembered (default: window.localStorage). */
  storage?: Storage;
}

export class CloudwsPanel extends Panel {
  constructor(options: ICloudwsPanelOptions = {}) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-cloudws-panel');
    this._settings = options.settings ?? ServerConnection.makeSettings();
    this._storage = options.storage ?? window.localStorage;
    this.toolbar = new Toolbar();
    this.toolbar.addClass('jp-cloudws-toolbar');
    this._statusNode = document.createElement('span');
    this._statusNode.className = 'jp-cloudws-status';
    this._statusNode.setAttribute('role', 'status');
    const status = new Widget({ node: this._statusNode });
    this.toolbar.addItem('spacer', Toolbar.createSpacerItem());
    this.toolbar.addItem('status', status);
    this._body = new Widget();
    this._body.addClass('jp-cloudws-body');
    this._style = document.createElement('style');
    this._body.node.appendChild(this._style);
    this.addWidget(this.toolbar);
    this.addWidget(this._body);

    this.model = new PanelModel(frame => this._connection.send(frame));
    this._connection = new PanelConnection({
      settings: this._settings,
      onFrame: frame => this._onFrame(frame),
      onStatus: status => this._onStatus(status),
      onBadFrame: text => console.warn('jupyter-cloudws: not a panel frame', text.slice(0, 200))
    });
    this.model.on('change:session', () => this._onSession());
    this._wanted = this.lastSessionId;
  }

  readonly model: PanelModel;
  readonly toolbar: Toolbar;

  /** The id of the session the panel shows, if any. */
  get sessionId(): string | undefined {
    const session = this.model.get('session') as { id?: string } | undefined;
    return session?.id || undefined;
  }

  /** Emitted when the shown session changes (commands refresh their enabled state). */
  get sessionChanged(): ISignal<this, string | undefined> {
    return this._sessionChanged;
  }

  get lastSessionId(): string | undefined {
    try {
      return this._storage.getItem(lastSessionKey(this._settings.baseUrl)) || undefined;
    } catch {
      return undefined; // storage disabled (private mode): nothing remembered
    }
  }

  /** Show session `id` (now if connected, else once the socket opens). */
  openSession(id: string): void {
    this._wanted = id;
    this._remember(id);
    this._start();
    if (this._ready) {
      this.model.send({ type: 'open_session', id });
    }
  }

  /** Show the new-session form. */
  newSession(): void {
    this._pendingView = 'new';
    this._start();
    if (this._ready) {
      this._showView('new');
    }
  }

  protected onAfterShow(): void {
    this._start();
  }

  protected onAfterAttach(): void {
    if (this.isVisible) {
      this._start();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._connection.dispose();
    this._cleanup?.();
    this.model.off();
    super.dispose();
  }

  /** First use: render chat.js into the body and connect. Later calls only reconnect now. */
  private _start(): void {
    if (!this._rendered) {
      this._rendered = true;
      chat.initialize({ model: this.model });
      const cleanup = chat.render({ model: this.model, el: this._body.node });
      this._cleanup = typeof cleanup === 'function' ? cleanup : undefined;
    }
    this._connection.start();
  }

  private _onFrame(frame: ServerFrame): void {
    if (frame.type === 'error') {
      // e.g. a write without the `write` permission: say so where the user looks, keep going.
      console.warn(`jupyter-cloudws: the server refused a frame (${frame.code}): ${frame.message}`);
      this._setStatus(`Refused: ${frame.message}`);
      return;
    }
    this.model.receive(frame);
    if (frame.type !== 'hello') {
      return;
    }
    if (frame.css !== undefined) {
      this._style.textContent = frame.css;
    }
    this._ready = true;
    this._setStatus('');
    // Each connection has a fresh controller on the server: reopen what the panel showed.
    if (this._wanted && this._wanted !== this.sessionId) {
      this.model.send({ type: 'open_session', id: this._wanted });
    }
    if (this._pendingView) {
      this._showView(this._pendingView);
    }
  }

  private _showView(view: string): void {
    this._pendingView = undefined;
    this.model.set('view', view);
    this.model.send({ type: 'list_sessions' });
  }

  private _onStatus(status: IConnectionStatus): void {
    if (status.state !== 'open') {
      this._ready = false;
    }
    if (status.state === 'connecting') {
      this._setStatus(status.failures ? `Reconnecting (attempt ${status.failures + 1})…` : 'Connecting…');
    } else if (status.state === 'waiting') {
      const seconds = Math.max(1, Math.round((status.retryInMs ?? 0) / 1000));
      this._setStatus(`Disconnected from the server; retrying in ${seconds} s`);
    } else if (status.state === 'closed') {
      this._setStatus('Closed');
    }
  }

  private _setStatus(text: string): void {
    this._statusNode.textContent = text;
    this._statusNode.title = text;
  }

  private _onSession(): void {
    const id = this.sessionId;
    if (id) {
      this._wanted = id;
      this._remember(id);
    } else if (this._ready && this._wanted) {
      // The server closed the session it showed (archived): forget it, or the next reconnect or
      // reload would open it again. A hello's empty state comes before _ready and changes nothing.
      this._wanted = undefined;
      this._forget();
    }
    this._sessionChanged.emit(id);
  }

  private _remember(id: string): void {
    try {
      this._storage.setItem(lastSessionKey(this._settings.baseUrl), id);
    } catch {
      // storage disabled or full: the panel still works, a reload just starts on the list
    }
  }

  private _forget(): void {
    try {
      this._storage.removeItem(lastSessionKey(this._settings.baseUrl));
    } catch {
      // storage disabled: nothing was remembered
    }
  }

  private _settings: ServerConnection.ISettings;
  private _storage: Storage;
  private _connection: PanelConnection;
  private _body: Widget;
  private _style: HTMLStyleElement;
  private _statusNode: HTMLElement;
  private _rendered = false;
  private _ready = false;
  private _wanted: string | undefined;
  private _pendingView: string | undefined;
  private _cleanup: (() => void) | undefined;
  private _sessionChanged = new Signal<this, string | undefined>(this);
}
