// jupyter_cloudws/widget/chat.js: the one chat front end, shared with the notebook widget
// (an anywidget ESM module). The panel calls it with its own model (src/model.ts).
declare module '*/widget/chat.js' {
  const chat: {
    initialize(props: { model: unknown }): void;
    render(props: { model: unknown; el: HTMLElement }): (() => void) | void;
  };
  export default chat;
}

declare module '*.svg' {
  const svgstr: string;
  export default svgstr;
}
