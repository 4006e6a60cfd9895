// The form editor (form-js) and the decision table editor (dmn-js), wired to check and
// deploy (deploy.js). What they edit comes as JSON in #editor-data.
(() => {
  const page = JSON.parse(document.getElementById("editor-data").textContent);
  const opening = page.kind === "form"
    ? TradeflowFormEditor.open("#editor", page.content, {propertiesContainer: "#properties"})
    : TradeflowDmn.open("#editor", page.content);
  opening.then((editor) => TradeflowDeploy.wire({
    name: page.name,
    content: page.kind === "form"
      ? async () => JSON.stringify(editor.getSchema(), null, 2)
      : () => editor.saveXML(),
    made: (answer) => (answer.forms || []).concat(answer.decisions || [], answer.definitions || []).find((d) => d.created),
    said: page.said,
  }));
})();
