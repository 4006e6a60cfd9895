// Form definitions page: edits a form-js schema (.form file). Exposes window.TradeflowFormEditor.
//
//   const handle = await TradeflowFormEditor.open(container, schema);
//   const schema = handle.getSchema();  handle.editor;  handle.destroy();

import { FormEditor } from '@bpmn-io/form-js';

import '@bpmn-io/form-js/dist/assets/form-js.css';
import '@bpmn-io/form-js/dist/assets/form-js-editor.css';
import '@bpmn-io/properties-panel/dist/assets/properties-panel.css';

async function open(container, schema, options = {}) {
  if (typeof container === 'string') container = document.querySelector(container);
  if (!container) throw new Error('TradeflowFormEditor.open: container not found');

  const editor = new FormEditor({
    container,
    ...(options.propertiesContainer ? { propertiesPanel: { parent: options.propertiesContainer } } : {}),
  });
  const { warnings } = await editor.importSchema(schema);

  return {
    editor,
    warnings,
    getSchema: () => editor.saveSchema(),
    destroy: () => editor.destroy(),
  };
}

window.TradeflowFormEditor = { open };
