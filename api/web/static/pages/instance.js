// An instance's page: its diagram with what is done, waiting and overdue (bpmn-js), and
// the check of its history's hash chain. Its data comes as JSON in #instance-data.
(() => {
  const page = JSON.parse(document.getElementById("instance-data").textContent);
  TradeflowViewer.show(document.getElementById("diagram"), page.xml, page.markers);
  const verify = document.getElementById("verify");
  verify.disabled = false;  // its handler is here now
  verify.addEventListener("click", async () => {
    const answer = await (await fetch(page.verify_url, {credentials: "same-origin"})).json();
    const box = document.getElementById("verified");
    const where = answer.first_bad_seq === null
      ? page.said.broken_whole
      : page.said.broken + " " + answer.first_bad_seq;
    box.textContent = answer.valid
      ? page.said.intact + " (" + answer.events + ")"
      : where + ": " + answer.reason;
    box.className = "flash " + (answer.valid ? "ok" : "error");
    box.hidden = false;
  });
})();
