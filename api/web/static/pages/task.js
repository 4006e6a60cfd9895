// A task's page: its Camunda form (form-js), submitted to the API with the session.
// Everything from the server comes as JSON in #task-data (never written into this code).
(() => {
  const page = JSON.parse(document.getElementById("task-data").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const problem = document.getElementById("problem");

  async function complete(data) {
    problem.hidden = true;
    const response = await fetch(page.complete_url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify({data}),
    });
    const body = await response.json();
    if (response.ok) {
      window.location.assign(page.done_url);
      return {};
    }
    problem.textContent = page.said.failed + ": " + body.title;
    problem.hidden = false;
    const errors = {};
    for (const e of body.errors || []) { (errors[e.field] = errors[e.field] || []).push(e.message); }
    return {errors};
  }

  if (page.form) {
    TradeflowForm.render(document.getElementById("form"), page.form, page.data,
                         {onSubmit: complete, submitLabel: page.said.submit});
  } else {
    document.getElementById("done").addEventListener("click", () => complete({}));
  }
})();
