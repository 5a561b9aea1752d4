// The parts of CodeMirror 6 the console uses, as one ES module.
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { javascript } from "@codemirror/lang-javascript";
import { json, jsonParseLinter } from "@codemirror/lang-json";
import {
  bracketMatching,
  defaultHighlightStyle,
  foldGutter,
  indentOnInput,
  syntaxHighlighting,
} from "@codemirror/language";
import { lintGutter, linter } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { EditorView, highlightActiveLine, keymap, lineNumbers } from "@codemirror/view";

const basics = [
  lineNumbers(),
  foldGutter(),
  history(),
  indentOnInput(),
  bracketMatching(),
  highlightActiveLine(),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
  EditorView.lineWrapping,
  EditorView.theme({
    "&": { minHeight: "8rem", fontSize: "14px" },
    ".cm-scroller": { fontFamily: "ui-monospace, monospace" },
  }),
];

/** An editor in `parent` holding `text`; `language` is "json" (checked as
 * you type) or "javascript".
 *
 * The editor lives in a shadow root of `parent`: there CodeMirror's styles go
 * into adopted style sheets, which a Content-Security-Policy without
 * 'unsafe-inline' allows (in a document they would be <style> elements). */
export function createEditor(parent, text, { language = "json" } = {}) {
  const root = parent.attachShadow({ mode: "open" });
  const extensions = [...basics];
  if (language === "json") {
    extensions.push(json(), linter(jsonParseLinter(), { delay: 200 }), lintGutter());
  } else {
    extensions.push(javascript());
  }
  return new EditorView({ parent: root, root, state: EditorState.create({ doc: text, extensions }) });
}

/** The editor's text. */
export function editorText(view) {
  return view.state.doc.toString();
}

/** Replace the editor's text. */
export function setEditorText(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}
