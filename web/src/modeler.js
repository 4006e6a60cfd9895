// Definitions page: edits a BPMN diagram with Camunda 7 properties (candidate groups, forms,
// extension properties, ...). Exposes window.TradeflowModeler.
//
//   const handle = await TradeflowModeler.open(container, propertiesContainer, bpmnXml);
//   const xml = await handle.saveXML();
//   handle.markErrors([{ element: 'review_documents', message: 'No candidate group' }]);
//   handle.markErrors([]);  // clears them
//   handle.select('review_documents');  handle.modeler;  handle.destroy();

import BpmnModeler from 'bpmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule,
  CamundaPlatformTooltipProvider,
} from 'bpmn-js-properties-panel';
import CamundaPlatformBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';

import 'bpmn-js/dist/assets/diagram-js.css';
import 'bpmn-js/dist/assets/bpmn-js.css';
import 'bpmn-js/dist/assets/bpmn-font/css/bpmn.css';
import '@bpmn-io/properties-panel/dist/assets/properties-panel.css';
import './tradeflow-markers.css';

const ERROR_MARKER = 'error';
const ERROR_OVERLAY = 'tradeflow-error';

// The properties panel (preact) subscribes to selection changes in effects that run after the
// next frame; resolve open() only then, so that handle.select() right away updates the panel.
function afterEffects() {
  return new Promise((done) => {
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      setTimeout(done, 0);
    };
    requestAnimationFrame(() => setTimeout(finish, 0));
    setTimeout(finish, 60); // hidden tabs get no animation frames
  });
}

function resolve(node, what) {
  if (typeof node === 'string') node = document.querySelector(node);
  if (!node) throw new Error(`TradeflowModeler.open: ${what} not found`);
  return node;
}

async function open(container, propertiesContainer, bpmnXml) {
  container = resolve(container, 'container');
  propertiesContainer = resolve(propertiesContainer, 'propertiesContainer');

  const modeler = new BpmnModeler({
    container,
    propertiesPanel: { parent: propertiesContainer, tooltip: CamundaPlatformTooltipProvider },
    additionalModules: [
      BpmnPropertiesPanelModule,
      BpmnPropertiesProviderModule,
      CamundaPlatformPropertiesProviderModule,
      CamundaPlatformBehaviorsModule,
    ],
    moddleExtensions: { camunda: camundaModdle },
  });

  const { warnings } = await modeler.importXML(bpmnXml);
  const canvas = modeler.get('canvas');
  const registry = modeler.get('elementRegistry');
  const overlays = modeler.get('overlays');
  canvas.zoom('fit-viewport', 'auto');
  await afterEffects();

  let marked = [];

  // problems: [{ element: id, message }], e.g. from the deploy linter. Replaces earlier ones;
  // returns the problems whose element is not on the diagram (for the page to list).
  function markErrors(problems = []) {
    marked.forEach((id) => registry.get(id) && canvas.removeMarker(id, ERROR_MARKER));
    overlays.remove({ type: ERROR_OVERLAY });
    marked = [];
    const unplaced = [];
    const byElement = new Map();
    (problems || []).forEach((problem) => {
      const id = problem && problem.element;
      if (!id || !registry.get(id)) {
        unplaced.push(problem);
        return;
      }
      byElement.set(id, [...(byElement.get(id) || []), String(problem.message ?? '')]);
    });
    byElement.forEach((messages, id) => {
      canvas.addMarker(id, ERROR_MARKER);
      marked.push(id);
      const html = document.createElement('div');
      html.className = 'tradeflow-error-overlay';
      html.title = messages.join('\n');
      html.textContent = messages.join(' · ');
      overlays.add(id, ERROR_OVERLAY, { position: { bottom: -4, left: 0 }, html });
    });
    return unplaced;
  }

  function select(id) {
    const element = registry.get(id);
    if (!element) return false;
    modeler.get('selection').select(element);
    return true;
  }

  return {
    modeler,
    warnings,
    markErrors,
    select,
    saveXML: async () => (await modeler.saveXML({ format: true })).xml,
    fit: () => canvas.zoom('fit-viewport', 'auto'),
    destroy: () => modeler.destroy(),
  };
}

window.TradeflowModeler = { open };
