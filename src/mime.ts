/**
 * `application/vnd.jupyter.cloudws.panel+json` (`{"session_id": "...", "created_s": <epoch s>}`),
 * what `%cloudws panel` displays: opens the side panel on that session and shows one line.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

export const PANEL_MIME_TYPE = 'application/vnd.jupyter.cloudws.panel+json';
/** An output older than this does not open the panel: reopening a notebook must not steal it. */
export const FRESH_S = 120;

export interface IPanelLink {
  session_id?: unknown;
  created_s?: unknown;
}

/** Whether an output made at `createdS` (epoch seconds) is fresh at `nowS`. */
export function isFresh(createdS: unknown, nowS: number): boolean {
  if (typeof createdS !== 'number' || !Number.isFinite(createdS)) {
    return false;
  }
  const age = nowS - createdS;
  return age <= FRESH_S && age >= -FRESH_S; // a little clock skew either way is fine
}

/** Outputs that already opened the panel (an output is rendered again when its cell is redrawn). */
const opened = new Set<string>();

export class PanelLinkRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(open: (sessionId: string) => void) {
    super();
    this._open = open;
    this.addClass('jp-cloudws-panel-link');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = (model.data[PANEL_MIME_TYPE] ?? {}) as IPanelLink;
    const id = typeof data.session_id === 'string' ? data.session_id : '';
    this.node.replaceChildren();
    if (!id) {
      this.node.textContent = 'No Claude Code session to open.';
      return;
    }
    const key = `${id}@${String(data.created_s)}`;
    const fresh = isFresh(data.created_s, Date.now() / 1000) && !opened.has(key);
    if (fresh) {
      opened.add(key);
      this._open(id);
    }
    const link = document.createElement('button');
    link.className = 'jp-cloudws-link';
    link.textContent = id;
    link.title = 'Open this session in the Claude Code panel';
    link.onclick = () => this._open(id);
    const prefix = fresh ? 'Opened session ' : 'Session ';
    const suffix = fresh ? ' in the Claude Code panel (right sidebar).' : ': open it in the Claude Code panel.';
    this.node.append(prefix, link, suffix);
  }

  private _open: (sessionId: string) => void;
}
