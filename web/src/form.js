// Task form page: renders a Camunda form (form-js schema) and submits it through the page's
// own handler. Exposes window.TradeflowForm.
//
//   const handle = TradeflowForm.render(container, schema, data, {
//     onSubmit: async (data) => ({ errors: { invoice_number: ['Already used'] } }),
//     submitLabel: 'Complete task',   // optional
//     readOnly: false,                // optional: view a completed task
//   });
//   handle.showErrors({ key: ['message', ...] });  handle.getData();  handle.destroy();
//   await handle.ready;  // resolves once the schema is imported (rejects on a bad schema)

import { Form, Text, escapeHTML, useTemplateEvaluation } from '@bpmn-io/form-js';

import '@bpmn-io/form-js/dist/assets/form-js.css';
import './tradeflow-form.css';

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// form-js's text view puts the data's values into its markdown as they are ({{customer}}),
// so a value holding markup became links, images or pictures of buttons on the page (its
// sanitizer keeps those, only scripts go). Here the values are escaped first, as form-js
// does for its HTML view: a value shows as the text it is; the form's own markdown stays.
const ESCAPED = { debug: true, sanitizer: escapeHTML };

function EscapedText(props) {
  const { field } = props;
  const options = field.strict ? { ...ESCAPED, strict: true } : ESCAPED;
  const text = useTemplateEvaluation(field.text || '', options);
  return Text({ ...props, field: { ...field, text } });
}
EscapedText.config = Text.config;

const EscapedTextModule = {
  __init__: ['escapedText'],
  escapedText: ['type', function EscapedTextField(formFields) {
    formFields.register('text', EscapedText);
  }],
};
EscapedTextModule.escapedText[1].$inject = ['formFields'];

// Keys of errors about the whole submission rather than one field.
const FORM_LEVEL_KEYS = new Set(['', '_form', '__all__', 'null', 'undefined']);

function toList(messages) {
  if (messages === null || messages === undefined) return [];
  return (Array.isArray(messages) ? messages : [messages]).map(String);
}

function hasOwnSubmitButton(components = []) {
  return components.some(
    (component) =>
      (component.type === 'button' && (component.action || 'submit') === 'submit') ||
      hasOwnSubmitButton(component.components || []),
  );
}

function render(container, schema, data = {}, options = {}) {
  if (typeof container === 'string') container = document.querySelector(container);
  if (!container) throw new Error('TradeflowForm.render: container not found');

  const { onSubmit, submitLabel = 'Submit', readOnly = false } = options;

  const root = el('div', 'tradeflow-form');
  const formHost = el('div', 'tradeflow-form__fields');
  const summary = el('div', 'tradeflow-form__summary');
  summary.setAttribute('role', 'alert');
  summary.hidden = true;
  root.append(formHost, summary);

  let button = null;
  // A schema with its own submit button (type "button", action "submit") gets no second one.
  if (!readOnly && !hasOwnSubmitButton((schema && schema.components) || [])) {
    const actions = el('div', 'tradeflow-form__actions');
    button = el('button', 'tradeflow-form__submit', submitLabel);
    button.type = 'button';
    actions.append(button);
    root.append(actions);
  }
  container.append(root);

  const form = new Form({
    container: formHost,
    properties: { readOnly },
    additionalModules: [EscapedTextModule],
  });
  let busy = false;

  // Field instances of the rendered form: key path ("a.b" for nested) → field id.
  function keyedFields() {
    const registry = form.get('formFieldRegistry');
    const result = new Map();
    form.get('formFieldInstanceRegistry').getAllKeyed().forEach((instance) => {
      const field = registry.get(instance.id);
      if (!field) return;
      const path = (instance.valuePath || [field.key]).join('.');
      if (!result.has(path)) result.set(path, { id: field.id, indexes: instance.indexes });
      if (field.key && !result.has(field.key)) result.set(field.key, { id: field.id, indexes: instance.indexes });
    });
    return result;
  }

  function setSummary(messages) {
    summary.replaceChildren();
    summary.hidden = messages.length === 0;
    if (!messages.length) return;
    const list = el('ul');
    messages.forEach((message) => list.append(el('li', null, message)));
    summary.append(list);
  }

  // fieldErrors: { key: [messages] } (a single message string is accepted too). Keys that match
  // no field are listed above the submit button as "key: message"; form-level keys ("", "_form",
  // "__all__", "null", "undefined") without the prefix. Replaces errors shown before.
  function showErrors(fieldErrors = {}) {
    const fields = keyedFields();
    const errors = {};
    const unmatched = [];
    Object.entries(fieldErrors || {}).forEach(([key, messages]) => {
      const list = toList(messages);
      if (!list.length) return;
      const target = fields.get(key) || fields.get(String(key).replace(/\[(\d+)\]/g, '.$1'));
      if (target && !(target.indexes && Object.keys(target.indexes).length)) {
        errors[target.id] = [...(errors[target.id] || []), ...list];
      } else {
        const formLevel = FORM_LEVEL_KEYS.has(String(key));
        list.forEach((message) => unmatched.push(formLevel ? message : `${key}: ${message}`));
      }
    });
    form._setState({ errors });
    setSummary(unmatched);
    const first = root.querySelector('.fjs-has-errors input, .fjs-has-errors textarea, .fjs-has-errors select');
    if (first) first.focus();
  }

  function clearErrors() {
    form._setState({ errors: {} });
    setSummary([]);
  }

  // Every submit path (our button, a schema's own submit button, handle.submit()) goes through
  // form.submit(), which validates against the schema and fires 'submit' with { data, errors }.
  async function handleSubmit({ data: submitted, errors: clientErrors }) {
    if (busy || readOnly) return;
    if (Object.keys(clientErrors || {}).length) {
      setSummary([]);
      return;
    }
    if (typeof onSubmit !== 'function') return;
    busy = true;
    if (button) button.disabled = true;
    try {
      const response = (await onSubmit(submitted)) || {};
      if (response.errors && Object.keys(response.errors).length) showErrors(response.errors);
      else clearErrors();
    } catch (error) {
      setSummary([error && error.message ? error.message : String(error)]);
    } finally {
      busy = false;
      if (button) button.disabled = false;
    }
  }

  form.on('submit', (event) => {
    handleSubmit(event);
  });

  function submit() {
    if (busy || readOnly) return;
    form.submit();
  }

  if (button) button.addEventListener('click', submit);

  const ready = form.importSchema(schema, data || {});
  ready.catch((error) => setSummary([`Cannot show this form: ${error.message || error}`]));

  return {
    form,
    ready,
    showErrors,
    clearErrors,
    submit,
    getData: () => form._getSubmitData(),
    destroy() {
      form.destroy();
      root.remove();
    },
  };
}

window.TradeflowForm = { render };
