// Check and deploy from an editor page (diagram, form, decision table), through the API
// with the session: the buttons #check and #deploy, the boxes #outcome and #problems.
// content() gives the file's text, mark(problems) shows them in the editor, made(answer)
// picks what the deployment created, said holds the page's words.
window.TradeflowDeploy = {
  wire({name, content, mark = () => {}, made, said}) {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const outcome = document.getElementById("outcome");
    const list = document.getElementById("problems");
    async function send(path) {
      const body = new FormData();
      body.append("file", new Blob([await content()]), name);
      const response = await fetch(path, {method: "POST", body, credentials: "same-origin", headers: {"X-CSRFToken": csrf}});
      const answer = await response.json();
      const problems = response.status === 422 ? answer.errors : [];
      list.replaceChildren();
      for (const p of problems) {
        const item = document.createElement("li");
        item.textContent = (p.element ? p.element + ": " : "") + p.message;
        list.appendChild(item);
      }
      mark(problems);
      outcome.className = "flash " + (response.ok ? "ok" : "error");
      outcome.hidden = false;
      return {response, answer};
    }
    for (const id of ["check", "deploy"]) document.getElementById(id).disabled = false;  // ready
    document.getElementById("check").addEventListener("click", async () => {
      const {response, answer} = await send("/api/v1/definitions/check");
      outcome.textContent = response.ok ? said.ok : answer.title + ": " + answer.detail;
    });
    document.getElementById("deploy").addEventListener("click", async () => {
      const {response, answer} = await send("/api/v1/definitions");
      if (!response.ok) { outcome.textContent = answer.title + ": " + answer.detail; return; }
      const created = made(answer);
      outcome.textContent = created ? said.deployed + " " + created.version : said.unchanged;
      for (const warning of answer.warnings || []) {  // deployed all the same: worth a look
        const item = document.createElement("li");
        item.className = "warning";
        item.textContent = warning;
        list.appendChild(item);
      }
    });
  },
};
