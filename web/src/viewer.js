// Instance page: shows a process diagram read-only (pan/zoom) with the instance's state as
// markers. Exposes window.TradeflowViewer.
//
//   const handle = await TradeflowViewer.show(container, bpmnXml,
//     { done: ['start', 'prepare_documents'], active: ['review_documents'], overdue: [] });
//   handle.setMarkers({ ... });  handle.viewer;  handle.destroy();

import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';

import 'bpmn-js/dist/assets/diagram-js.css';
import 'bpmn-js/dist/assets/bpmn-js.css';
import 'bpmn-js/dist/assets/bpmn-font/css/bpmn.css';
import './tradeflow-markers.css';

const MARKERS = ['done', 'active', 'overdue'];

async function show(container, bpmnXml, markers = {}) {
  if (typeof container === 'string') container = document.querySelector(container);
  if (!container) throw new Error('TradeflowViewer.show: container not found');

  const viewer = new NavigatedViewer({ container });
  const { warnings } = await viewer.importXML(bpmnXml);
  const canvas = viewer.get('canvas');
  const registry = viewer.get('elementRegistry');
  canvas.zoom('fit-viewport', 'auto');

  let applied = [];

  function setMarkers(next = {}) {
    applied.forEach(([id, marker]) => canvas.removeMarker(id, marker));
    applied = [];
    MARKERS.forEach((marker) => {
      (next[marker] || []).forEach((id) => {
        if (!registry.get(id)) return; // ids of another version of the diagram: skip
        canvas.addMarker(id, marker);
        applied.push([id, marker]);
      });
    });
  }

  setMarkers(markers);

  return {
    viewer,
    warnings,
    setMarkers,
    fit: () => canvas.zoom('fit-viewport', 'auto'),
    destroy: () => viewer.destroy(),
  };
}

window.TradeflowViewer = { show };
