// Decision definitions page: edits a .dmn file (decision tables, DRD, literal expressions).
// Exposes window.TradeflowDmn.
//
//   const handle = await TradeflowDmn.open(container, dmnXml);  // opens the first decision table
//   const xml = await handle.saveXML();  handle.views();  handle.openView(id);  handle.destroy();

import DmnModeler from 'dmn-js/lib/Modeler';

import 'dmn-js/dist/assets/diagram-js.css';
import 'dmn-js/dist/assets/dmn-js-shared.css';
import 'dmn-js/dist/assets/dmn-js-drd.css';
import 'dmn-js/dist/assets/dmn-js-decision-table.css';
import 'dmn-js/dist/assets/dmn-js-decision-table-controls.css';
import 'dmn-js/dist/assets/dmn-js-literal-expression.css';
import 'dmn-js/dist/assets/dmn-js-boxed-expression.css';
import 'dmn-js/dist/assets/dmn-js-boxed-expression-controls.css';
import 'dmn-js/dist/assets/dmn-font/css/dmn.css';

async function open(container, dmnXml, options = {}) {
  if (typeof container === 'string') container = document.querySelector(container);
  if (!container) throw new Error('TradeflowDmn.open: container not found');

  const modeler = new DmnModeler({ container });
  const { warnings } = await modeler.importXML(dmnXml);

  const views = () => modeler.getViews().map(({ type, id, element }) => ({ type, id, name: element.name }));
  const openView = async (id) => {
    const view = modeler.getViews().find((candidate) => candidate.id === id);
    if (view) await modeler.open(view);
    return Boolean(view);
  };

  const wanted = options.view || 'decisionTable';
  const first = modeler.getViews().find((view) => view.type === wanted);
  if (first && modeler.getActiveView() !== first) await modeler.open(first);

  return {
    modeler,
    warnings,
    views,
    openView,
    saveXML: async () => (await modeler.saveXML({ format: true })).xml,
    destroy: () => modeler.destroy(),
  };
}

window.TradeflowDmn = { open };
