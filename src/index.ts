/**
 * jupyter-cloudws: the "Claude Code" panel in the right sidebar of JupyterLab 4 and Notebook 7.
 *
 * It talks to the server extension over one WebSocket and never starts a kernel. Launcher,
 * palette and notebooks are optional, so the same plugin works in both applications.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { addBelowIcon, CommandToolbarButton, LabIcon } from '@jupyterlab/ui-components';

import { PANEL_MIME_TYPE, PanelLinkRenderer } from './mime';
import { CloudwsPanel } from './panel';

import iconSvg from '../style/icon.svg';

export const CommandIds = {
  newSession: 'cloudws:new-session',
  openPanel: 'cloudws:open-panel',
  insertInNotebook: 'cloudws:insert-in-notebook'
} as const;

export const cloudwsIcon = new LabIcon({ name: 'jupyter-cloudws:claude-code', svgstr: iconSvg });

/** The cell the "Insert in notebook" button adds: the session's chat, shown by the kernel. */
export function chatCellSource(sessionId: string): string {
  return `%load_ext jupyter_cloudws\n%cloudws use ${sessionId}\n%cloudws chat`;
}

const RIGHT_RANK = 600;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-cloudws:plugin',
  description: 'The Claude Code side panel (sessions in sandboxes, no kernel).',
  autoStart: true,
  optional: [ICommandPalette, ILauncher, INotebookTracker, IRenderMimeRegistry, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    notebooks: INotebookTracker | null,
    rendermime: IRenderMimeRegistry | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new CloudwsPanel({ settings: app.serviceManager.serverSettings });
    panel.title.icon = cloudwsIcon;
    panel.title.caption = 'Claude Code';
    app.shell.add(panel, 'right', { rank: RIGHT_RANK });
    restorer?.add(panel, panel.id);

    const show = (): void => {
      app.shell.activateById(panel.id);
    };

    app.commands.addCommand(CommandIds.openPanel, {
      label: 'Open the Claude Code panel',
      caption: 'Show the Claude Code panel; with sessionId, on that session',
      icon: cloudwsIcon,
      execute: args => {
        show();
        const id = typeof args.sessionId === 'string' ? args.sessionId : '';
        if (id) {
          panel.openSession(id);
        }
      }
    });

    app.commands.addCommand(CommandIds.newSession, {
      label: 'New Claude Code session',
      caption: 'Start a Claude Code session on a repository, in a sandbox',
      icon: cloudwsIcon,
      execute: () => {
        show();
        panel.newSession();
      }
    });

    app.commands.addCommand(CommandIds.insertInNotebook, {
      label: 'Insert in notebook',
      caption: "Insert a cell with this session's chat below the active cell of the notebook",
      icon: addBelowIcon,
      isEnabled: () => !!(panel.sessionId && notebooks?.currentWidget),
      execute: () => {
        const id = panel.sessionId;
        const current = notebooks?.currentWidget;
        if (!id || !current) {
          return;
        }
        const notebook = current.content;
        NotebookActions.insertBelow(notebook);
        if (notebook.activeCell?.model.type !== 'code') {
          NotebookActions.changeCellType(notebook, 'code');
        }
        notebook.activeCell?.model.sharedModel.setSource(chatCellSource(id));
        app.shell.activateById(current.id);
      }
    });
    const refresh = (): void => app.commands.notifyCommandChanged(CommandIds.insertInNotebook);
    panel.sessionChanged.connect(refresh);
    notebooks?.currentChanged.connect(refresh);
    panel.toolbar.insertItem(
      0,
      'insert-in-notebook',
      new CommandToolbarButton({ commands: app.commands, id: CommandIds.insertInNotebook, label: 'Insert in notebook' })
    );

    palette?.addItem({ command: CommandIds.newSession, category: 'Claude Code' });
    palette?.addItem({ command: CommandIds.openPanel, category: 'Claude Code' });
    launcher?.add({ command: CommandIds.newSession, category: 'Other', rank: 1 });

    rendermime?.addFactory(
      {
        // Trusted outputs only: an untrusted notebook shows the text/plain line instead.
        safe: false,
        mimeTypes: [PANEL_MIME_TYPE],
        createRenderer: () =>
          new PanelLinkRenderer(sessionId => {
            void app.commands.execute(CommandIds.openPanel, { sessionId });
          })
      },
      0
    );
  }
};

export default plugin;
