// The modeler (bpmn-js with the properties panel), wired to check and deploy (deploy.js).
// The diagram comes as JSON in #modeler-data.
(() => {
  const page = JSON.parse(document.getElementById("modeler-data").textContent);
  TradeflowModeler.open("#canvas", "#properties", page.xml).then((modeler) => TradeflowDeploy.wire({
    name: page.key + ".bpmn",
    content: () => modeler.saveXML(),
    mark: (problems) => modeler.markErrors(problems.filter((p) => p.element)),
    made: (answer) => (answer.definitions || []).find((d) => d.key === page.key && d.created),
    said: page.said,
  }));
})();
